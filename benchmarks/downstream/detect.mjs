// Runs the frozen CenterNet (MobileNetV3 backbone) COCO detector that ships in @vladmandic/human
// (models/centernet.json + .bin) with TF.js, unchanged, the way human feeds it: an RGB float32
// [1, H, W, 3] tensor in 0..255, resized bilinearly (no aspect ratio kept) to the graph's 512 x 512
// input, output 'tower_0/detections' ([1, 100, 6]: x1, y1, x2, y2 in input pixels, score, class index).
// Post-processing (score threshold, NMS, class mapping) is left to the Python side.
//
// Protocol on stdin/stdout, one frame at a time: Python writes a JSON header line
// {"h": H, "w": W} followed by H*W*3 bytes of RGB uint8; this answers one JSON line
// {"detections": [[x1, y1, x2, y2, score, class] x 100]} with boxes in input-image pixels.
// The first line written is {"ready": true, "backend": ..., "version": ...} once the model is loaded.

import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';

const here = path.dirname(new URL(import.meta.url).pathname);
// stdout carries the protocol alone: anything a library logs goes to stderr
console.log = (...args) => process.stderr.write(`${args.join(' ')}\n`);
console.warn = console.log;
console.info = console.log;

function modelDir() {
  return path.join(here, 'node_modules', '@vladmandic', 'human', 'models');
}

function loadArtifacts(dir) {
  const graph = JSON.parse(fs.readFileSync(path.join(dir, 'centernet.json'), 'utf8'));
  const weightSpecs = graph.weightsManifest.flatMap((group) => group.weights);
  const buffers = graph.weightsManifest.flatMap((group) => group.paths.map((p) => fs.readFileSync(path.join(dir, p))));
  const all = Buffer.concat(buffers);
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
  return {
    modelTopology: graph.modelTopology, weightSpecs, weightData, format: graph.format,
    generatedBy: graph.generatedBy, convertedBy: graph.convertedBy, signature: graph.signature,
  };
}

async function init(backend) {
  if (backend === 'wasm') {
    const dist = path.join(here, 'node_modules', '@tensorflow', 'tfjs-backend-wasm', 'dist') + path.sep;
    setWasmPaths(dist);
  }
  await tf.setBackend(backend);
  await tf.ready();
  const model = await tf.loadGraphModel(tf.io.fromMemory(loadArtifacts(modelDir())));
  const size = model.inputs[0].shape[1];
  return { model, size };
}

function detect(model, size, rgb, h, w) {
  return tf.tidy(() => {
    const image = tf.tensor4d(rgb, [1, h, w, 3], 'int32').toFloat();
    const input = tf.image.resizeBilinear(image, [size, size]);
    const out = model.execute(input, ['tower_0/detections']);
    const rows = out.arraySync()[0];
    return rows.map(([x1, y1, x2, y2, score, cls]) => [x1 * w / size, y1 * h / size, x2 * w / size, y2 * h / size, score, cls]);
  });
}

class FrameReader {
  constructor(stream) {
    this.chunks = [];
    this.length = 0;
    this.waiting = null;
    stream.on('data', (chunk) => { this.chunks.push(chunk); this.length += chunk.length; this.wake(); });
    stream.on('end', () => { this.ended = true; this.wake(); });
  }

  wake() { if (this.waiting) { const w = this.waiting; this.waiting = null; w(); } }

  buffer() { const b = Buffer.concat(this.chunks); this.chunks = [b]; return b; }

  take(n) { const b = this.buffer(); this.chunks = [b.subarray(n)]; this.length -= n; return b.subarray(0, n); }

  async until(test) {
    for (;;) {
      const n = test(this.buffer());
      if (n >= 0) return this.take(n);
      if (this.ended) return null;
      await new Promise((resolve) => { this.waiting = resolve; });
    }
  }

  line() { return this.until((b) => { const i = b.indexOf(10); return i < 0 ? -1 : i + 1; }); }

  bytes(n) { return this.until((b) => (b.length >= n ? n : -1)); }
}

async function main() {
  const backend = process.argv[2] || 'wasm';
  const { model, size } = await init(backend);
  process.stdout.write(`${JSON.stringify({ ready: true, backend: tf.getBackend(), version: tf.version.tfjs, size })}\n`);
  const reader = new FrameReader(process.stdin);
  for (;;) {
    const header = await reader.line();
    if (!header) break;
    const { h, w } = JSON.parse(header.toString('utf8'));
    const raw = await reader.bytes(h * w * 3);
    if (!raw) break;
    const detections = detect(model, size, new Int32Array(Uint8Array.from(raw)), h, w);
    process.stdout.write(`${JSON.stringify({ detections })}\n`);
  }
}

main().catch((err) => { process.stderr.write(`${err.stack || err}\n`); process.exit(1); });
