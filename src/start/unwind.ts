/**
 * Shutdown steps, recorded as each part of a node starts, run in reverse
 * order: a node that fails half-way through starting stops what it had
 * started, and a stopping node closes its API before its stores. A failing
 * step does not keep the steps after it from running.
 */
export class Unwind {
  readonly #steps: Array<() => Promise<void>> = []

  push (step: () => Promise<void>): void {
    this.#steps.push(step)
  }

  async run (): Promise<void> {
    for (const step of this.#steps.splice(0).reverse()) await step().catch(() => {})
  }
}
