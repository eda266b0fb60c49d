import { bytes } from './output.ts'

/** Transfers smaller than this finish before a bar would be worth drawing. */
const MIN_BYTES = 8 * 1024 * 1024
const REDRAW_MS = 100

export interface Progress {
  add: (n: number) => void
  done: () => void
}

const SILENT: Progress = { add: () => {}, done: () => {} }

/**
 * A progress bar on stderr, so stdout stays clean for `--json` and pipes.
 * Silent when stderr is not a terminal or the transfer is small.
 */
export function progress (label: string, total: number, stream: NodeJS.WriteStream = process.stderr): Progress {
  if (stream.isTTY !== true || total < MIN_BYTES) return SILENT
  return new Bar(label, total, stream)
}

class Bar implements Progress {
  readonly #label: string
  readonly #total: number
  readonly #stream: NodeJS.WriteStream
  readonly #started = Date.now()
  #done = 0
  #drawnAt = 0

  constructor (label: string, total: number, stream: NodeJS.WriteStream) {
    this.#label = label
    this.#total = total
    this.#stream = stream
  }

  add (n: number): void {
    this.#done += n
    const now = Date.now()
    if (now - this.#drawnAt >= REDRAW_MS) {
      this.#drawnAt = now
      this.#draw()
    }
  }

  done (): void {
    this.#draw()
    this.#stream.write('\n')
  }

  #draw (): void {
    const fraction = Math.min(1, this.#done / this.#total)
    const seconds = Math.max(0.001, (Date.now() - this.#started) / 1000)
    const tail = ` ${(fraction * 100).toFixed(0).padStart(3)}% ${bytes(this.#done)}/${bytes(this.#total)} ${bytes(Math.round(this.#done / seconds))}/s`
    const room = Math.max(10, (this.#stream.columns || 80) - this.#label.length - tail.length - 4)
    const filled = Math.round(fraction * room)
    this.#stream.write(`\r${this.#label} [${'#'.repeat(filled)}${'-'.repeat(room - filled)}]${tail}\x1b[K`)
  }
}
