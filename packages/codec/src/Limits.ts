/**
 * Size limits shared by the framer, the encoders and the decoders.
 *
 * PostgreSQL itself refuses any message over 1 GiB (MaxAllocSize); a peer sending more is
 * broken or hostile, so that is the default ceiling in both directions. Users may lower it.
 */
export const DEFAULT_MAX_MESSAGE_SIZE = 0x40000000 // 1 GiB, the length field's value (it counts itself)

/** The largest value an Int32 length field can carry. */
export const INT32_MAX = 0x7fffffff

/** The smallest legal value of a length field: it counts its own four bytes. */
export const MIN_MESSAGE_LENGTH = 4

/** Startup-phase packets (StartupMessage, SSLRequest, CancelRequest…) are small; PostgreSQL caps them at 10000 bytes. */
export const MAX_STARTUP_PACKET_LENGTH = 10000
