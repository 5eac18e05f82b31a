/**
 * How an interruption (Ctrl-C, SIGTERM) ends the running command.
 *
 * Invariants:
 * - A long-running command (main job, cdc, receivewal, trace) marks its stop as clean when it starts;
 *   the executable then exits 0 after an interruption instead of 130, once every finalizer has run.
 * - A one-shot command states what an interruption leaves behind (`interruptedNote`); the executable
 *   prints it with exit 130.
 */
let clean = false
let note = "interrupted before the command finished"

export const markStopIsClean = (): void => {
  clean = true
}

export const stopIsClean = (): boolean => clean

export const setInterruptedNote = (text: string): void => {
  note = text
}

export const interruptedNote = (): string => note
