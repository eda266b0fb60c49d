import t from 'tap'
import { parseS3BlobsConfig, resolveS3BlobStoreOptions, s3BlobsConfigFromEnv } from '../../src/blobs/s3-config.ts'

const minimal = { type: 's3', endPoint: 'minio', bucket: 'dw-site-a' }
const creds = { DW_S3_ACCESS_KEY: 'ak', DW_S3_SECRET_KEY: 'sk' }

void t.test('defaults: TLS on port 443, no prefix', async (t) => {
  t.same(parseS3BlobsConfig(minimal), { type: 's3', endPoint: 'minio', port: 443, useSSL: true, bucket: 'dw-site-a', prefix: '' })
  t.equal(parseS3BlobsConfig({ ...minimal, useSSL: false }).port, 80)
  t.equal(parseS3BlobsConfig({ ...minimal, useSSL: false, port: 9000 }).port, 9000)
})

void t.test('prefixes are normalised to end in one slash', async (t) => {
  for (const [given, stored] of [['', ''], ['/', ''], ['site-a', 'site-a/'], ['/site-a/', 'site-a/'], ['a/b.c/d_e-f', 'a/b.c/d_e-f/']]) {
    t.equal(parseS3BlobsConfig({ ...minimal, prefix: given }).prefix, stored, JSON.stringify(given))
  }
})

void t.test('bad settings are CONFIG_INVALID and name the setting', async (t) => {
  const cases: Array<[Record<string, unknown> | unknown, RegExp]> = [
    [null, /must be an object/],
    [{ ...minimal, type: 'fs' }, /"type" must be "s3"/],
    [{ ...minimal, endpoint: 'x' }, /unknown setting "endpoint" \(did you mean "endPoint"\?\)/],
    [{ type: 's3', bucket: 'dw-a' }, /"endPoint" is required/],
    [{ ...minimal, endPoint: 'http://minio:9000' }, /not a URL/],
    [{ ...minimal, endPoint: 'minio:9000' }, /without port or path/],
    [{ ...minimal, port: 0 }, /"port" must be a whole number/],
    [{ ...minimal, port: '9000' }, /"port" must be a whole number/],
    [{ ...minimal, useSSL: 'no' }, /"useSSL" must be true or false/],
    [{ ...minimal, bucket: undefined }, /"bucket" is required/],
    [{ ...minimal, bucket: 'Upper' }, /"bucket" must be 3 to 63/],
    [{ ...minimal, bucket: 'a..b' }, /"bucket" must be/],
    [{ ...minimal, bucket: '10.0.0.1' }, /"bucket" must be/],
    [{ ...minimal, prefix: 'a/../b' }, /"prefix" must be path segments/],
    [{ ...minimal, prefix: 'a b' }, /"prefix" must be path segments/],
    [{ ...minimal, prefix: 7 }, /"prefix" must be a string/],
    [{ ...minimal, region: 'US East' }, /"region" must be/],
    [{ ...minimal, secretKey: '' }, /"secretKey" must be a non-empty string/]
  ]
  for (const [section, message] of cases) {
    t.throws(() => parseS3BlobsConfig(section, '/data/config.json "blobs"'), { code: 'CONFIG_INVALID', message }, JSON.stringify(section))
  }
  t.throws(() => parseS3BlobsConfig(null, '/data/config.json "blobs"'), { message: /^\/data\/config\.json "blobs": / })
})

void t.test('a secret is never echoed in a message', async (t) => {
  const err = t.throws(() => parseS3BlobsConfig({ ...minimal, secretKey: 'hunter2', accessKey: 4242 }), { code: 'CONFIG_INVALID' }) as Error
  t.notMatch(err.message, /hunter2|4242/)
})

void t.test('credentials: the environment wins over config.json, and one of them is required', async (t) => {
  const section = { ...minimal, accessKey: 'file-ak', secretKey: 'file-sk' }
  t.match(resolveS3BlobStoreOptions(section, {}), { accessKey: 'file-ak', secretKey: 'file-sk' })
  t.match(resolveS3BlobStoreOptions(section, creds), { accessKey: 'ak', secretKey: 'sk' })
  t.match(resolveS3BlobStoreOptions(section, { ...creds, DW_S3_ACCESS_KEY: '' }), { accessKey: 'file-ak', secretKey: 'sk' }, 'empty is unset')
  t.throws(() => resolveS3BlobStoreOptions(minimal, {}), { code: 'CONFIG_INVALID', message: /DW_S3_ACCESS_KEY and DW_S3_SECRET_KEY/ })
  t.throws(() => resolveS3BlobStoreOptions(minimal, { DW_S3_ACCESS_KEY: 'ak' }), { code: 'CONFIG_INVALID', message: /set DW_S3_SECRET_KEY in/ })
})

void t.test('resolved options carry what S3BlobStore.open needs, and nothing else', async (t) => {
  t.same(resolveS3BlobStoreOptions({ ...minimal, useSSL: false, port: 9000, prefix: 'x', region: 'eu-west-1' }, creds), {
    endPoint: 'minio', port: 9000, useSSL: false, bucket: 'dw-site-a', prefix: 'x/', region: 'eu-west-1', accessKey: 'ak', secretKey: 'sk'
  })
})

void t.test('DW_S3_* settings override config.json at open', async (t) => {
  const env = { ...creds, DW_S3_ENDPOINT: 'https://s3.example.org:8443', DW_S3_BUCKET: 'other', DW_S3_PREFIX: '', DW_S3_REGION: 'eu-west-1' }
  t.same(resolveS3BlobStoreOptions({ ...minimal, useSSL: false, port: 9000, prefix: 'x/' }, env), {
    endPoint: 's3.example.org', port: 8443, useSSL: true, bucket: 'other', prefix: '', region: 'eu-west-1', accessKey: 'ak', secretKey: 'sk'
  })
  t.same(resolveS3BlobStoreOptions({ type: 's3' }, { ...creds, DW_S3_ENDPOINT: 'http://minio:9000', DW_S3_BUCKET: 'b-1' }), {
    endPoint: 'minio', port: 9000, useSSL: false, bucket: 'b-1', prefix: '', accessKey: 'ak', secretKey: 'sk'
  }, 'the environment can supply what config.json lacks')
})

void t.test('dw init from the environment', async (t) => {
  t.equal(s3BlobsConfigFromEnv({}), undefined)
  t.equal(s3BlobsConfigFromEnv({ DW_BLOBS: 'fs' }), undefined)
  t.same(s3BlobsConfigFromEnv({ DW_BLOBS: 's3', DW_S3_ENDPOINT: 'http://minio-a:9000', DW_S3_BUCKET: 'dw-site-a', ...creds }), {
    type: 's3', endPoint: 'minio-a', port: 9000, useSSL: false, bucket: 'dw-site-a', prefix: ''
  }, 'no credentials in what init writes')
  t.same(s3BlobsConfigFromEnv({ DW_BLOBS: 's3', DW_S3_ENDPOINT: 'https://[::1]', DW_S3_BUCKET: 'dw-a', DW_S3_PREFIX: 'node-1' }), {
    type: 's3', endPoint: '::1', port: 443, useSSL: true, bucket: 'dw-a', prefix: 'node-1/'
  })
  t.throws(() => s3BlobsConfigFromEnv({ DW_BLOBS: 'minio' }), { code: 'CONFIG_INVALID', message: /DW_BLOBS must be "fs" or "s3"/ })
  t.throws(() => s3BlobsConfigFromEnv({ DW_BLOBS: 's3', DW_S3_BUCKET: 'dw-a' }), { code: 'CONFIG_INVALID', message: /needs DW_S3_ENDPOINT/ })
  t.throws(() => s3BlobsConfigFromEnv({ DW_BLOBS: 's3', DW_S3_ENDPOINT: 'http://minio:9000' }), { code: 'CONFIG_INVALID', message: /needs DW_S3_BUCKET/ })
  for (const endpoint of ['minio:9000', 'ftp://minio', 'http://minio:9000/bucket', 'http://u:p@minio:9000']) {
    t.throws(() => s3BlobsConfigFromEnv({ DW_BLOBS: 's3', DW_S3_ENDPOINT: endpoint, DW_S3_BUCKET: 'dw-a' }),
      { code: 'CONFIG_INVALID', message: /^DW_S3_ENDPOINT must be a URL/ }, endpoint)
  }
  t.throws(() => s3BlobsConfigFromEnv({ DW_BLOBS: 's3', DW_S3_ENDPOINT: 'http://minio', DW_S3_BUCKET: 'BAD' }), { code: 'CONFIG_INVALID', message: /^DW_S3_BUCKET: / })
})
