/**
 * A long-lived part of a node (a service, a worker, a background loop):
 * the composition root starts it and stops it, and nothing it started (a
 * timer, a subscription, a worker) outlives `stop`.
 */
export interface Startable {
  start: () => void | Promise<void>
  stop: () => void | Promise<void>
}
