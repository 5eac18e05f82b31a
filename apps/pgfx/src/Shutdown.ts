/**
 * Whether an interruption (Ctrl-C, SIGTERM) is the normal end of the running command.
 *
 * Invariant: set once by a long-running command (main job, cdc, receivewal, trace) when it starts; the
 * executable then exits 0 after an interruption instead of 130, once every finalizer has run.
 */
let clean = false

export const markStopIsClean = (): void => {
  clean = true
}

export const stopIsClean = (): boolean => clean
