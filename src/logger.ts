import { pino, type Logger as PinoLogger, type LevelWithSilent } from 'pino'

export type Logger = PinoLogger

/**
 * One structured logger for the process; stages receive children of it.
 * Redaction is a last line of defence: secrets are never put into log objects on purpose.
 */
export function createLogger(level: LevelWithSilent = 'info', destination?: NodeJS.WritableStream): Logger {
  const opts = {
    level,
    base: { app: 'edgewarden' },
    redact: { paths: ['password', 'token', '*.password', '*.token', '*.secret', 'secret', 'authorization', '*.authorization'], censor: '[secret]' },
  }
  return destination ? pino(opts, destination as never) : pino(opts)
}

export const silentLogger: Logger = pino({ level: 'silent' })
