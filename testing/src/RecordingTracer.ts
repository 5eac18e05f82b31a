/**
 * A tracer that keeps every span it creates (Effect's own NativeSpan), for tests that inspect span names,
 * kinds, parents, attributes and outcomes.
 */
import * as Tracer from "effect/Tracer"

export const recordingTracer = (): { readonly tracer: Tracer.Tracer; readonly spans: Array<Tracer.NativeSpan> } => {
  const spans: Array<Tracer.NativeSpan> = []
  const tracer = Tracer.make({
    span(options) {
      const span = new Tracer.NativeSpan(options)
      spans.push(span)
      return span
    }
  })
  return { tracer, spans }
}
