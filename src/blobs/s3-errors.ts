import { DwError } from '../errors.ts'

/** The server and bucket a failure is reported against. */
export interface S3Place {
  /** `http(s)://host:port`. */
  server: string
  bucket: string
}

/** S3 error codes that mean the settings are wrong, not that the server is down. */
const CONFIG_CODES = new Set([
  'AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'NoSuchBucket', 'InvalidBucketName',
  'AllAccessDisabled', 'AccountProblem', 'BucketAlreadyExists', 'AuthorizationHeaderMalformed', 'InvalidRegion'
])
/** The minio client's own argument errors. */
const CONFIG_ERROR_NAMES = new Set(['InvalidBucketNameError', 'InvalidEndpointError', 'InvalidPortError', 'InvalidArgumentError', 'InvalidObjectNameError'])

/**
 * The one place S3 and network failures become DwErrors: refused
 * credentials or a missing bucket are CONFIG_INVALID (the settings are
 * wrong); anything else is BLOB_UNAVAILABLE (the server is unreachable or
 * failing; a retry may succeed). DwErrors and AbortErrors pass unchanged.
 */
export function storageError (err: unknown, doing: string, { server, bucket }: S3Place): unknown {
  if (err instanceof DwError || (err instanceof Error && err.name === 'AbortError')) return err
  const code = err instanceof Error ? (err as { code?: unknown }).code : undefined
  const name = err instanceof Error ? err.name : ''
  const reason = err instanceof Error && err.message !== '' ? err.message : String(code ?? err)
  if ((typeof code === 'string' && CONFIG_CODES.has(code)) || CONFIG_ERROR_NAMES.has(name)) {
    return new DwError('CONFIG_INVALID', `S3 at ${server} refused ${doing} in bucket "${bucket}": ${reason}`, { cause: err })
  }
  return new DwError('BLOB_UNAVAILABLE', `S3 at ${server} failed ${doing}: ${reason}`, { cause: err, details: { retryAfterSeconds: 30 } })
}

/** Runs S3 calls, turning their failures into DwErrors. */
export async function s3Call<T> (place: S3Place, doing: string, op: () => Promise<T>): Promise<T> {
  try {
    return await op()
  } catch (err) {
    throw storageError(err, doing, place)
  }
}

/** The object (or, for a HEAD request, the key) is not there. */
export function isNotFound (err: unknown): boolean {
  return hasCode(err, 'NoSuchKey') || hasCode(err, 'NotFound')
}

export function hasCode (err: unknown, code: string): boolean {
  return err instanceof Error && (err as { code?: unknown }).code === code
}
