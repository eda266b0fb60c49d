import { extname } from 'node:path'

const BY_EXTENSION: Record<string, string> = {
  '.csv': 'text/csv',
  '.tsv': 'text/tab-separated-values',
  '.txt': 'text/plain',
  '.md': 'text/markdown',
  '.json': 'application/json',
  '.jsonl': 'application/jsonl',
  '.ndjson': 'application/x-ndjson',
  '.xml': 'application/xml',
  '.yaml': 'application/yaml',
  '.yml': 'application/yaml',
  '.parquet': 'application/vnd.apache.parquet',
  '.pdf': 'application/pdf',
  '.zip': 'application/zip',
  '.gz': 'application/gzip',
  '.tar': 'application/x-tar',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.tif': 'image/tiff',
  '.tiff': 'image/tiff',
  '.nc': 'application/x-netcdf',
  '.h5': 'application/x-hdf5',
  '.onnx': 'application/onnx'
}

export function mediaTypeOf (path: string): string {
  return BY_EXTENSION[extname(path).toLowerCase()] ?? 'application/octet-stream'
}
