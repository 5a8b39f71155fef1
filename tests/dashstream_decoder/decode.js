// An independent DashStream decoder for the tests: nothing here comes from our Python or
// our .proto. protobufjs builds the types from DashFlow's own descriptor (the protobufjs
// JSON it generates from its .proto); fzstd inflates compressed frames.
//
//   node decode.js <dashstream.schema.json> <export file>
//
// The export file is frames, each preceded by its length as 4 bytes big-endian. Prints
// one JSON array: per frame {"marker", "size", "inflated_size", "message"}, the message
// as protobufjs's toObject gives it (enums as names, 64-bit integers as strings, bytes
// as base64, defaults left out, the oneof's name in "message"). Exits non-zero on any
// malformed frame.
"use strict";

const fs = require("fs");
const protobuf = require("protobufjs");
const fzstd = require("fzstd");

// DashFlow's decoders refuse payloads over 10 MB, compressed or not.
const MAX_BYTES = 10 * 1024 * 1024;

function main() {
  const [schemaPath, filePath] = process.argv.slice(2);
  if (!schemaPath || !filePath) {
    throw new Error("usage: node decode.js <schema.json> <export file>");
  }
  const root = protobuf.Root.fromJSON(JSON.parse(fs.readFileSync(schemaPath, "utf8")));
  const Message = root.lookupType("dashstream.v1.DashStreamMessage");
  const data = fs.readFileSync(filePath);
  const frames = [];
  let offset = 0;
  while (offset < data.length) {
    if (offset + 4 > data.length) throw new Error(`truncated length at byte ${offset}`);
    const size = data.readUInt32BE(offset);
    offset += 4;
    if (offset + size > data.length) throw new Error(`truncated frame at byte ${offset}`);
    const frame = data.subarray(offset, offset + size);
    offset += size;
    if (frame.length > MAX_BYTES) throw new Error(`frame of ${frame.length} bytes over 10 MB`);
    const marker = frame[0];
    let body;
    if (marker === 0x00) {
      body = frame.subarray(1);
    } else if (marker === 0x01) {
      body = fzstd.decompress(frame.subarray(1));
      if (body.length > MAX_BYTES) throw new Error("inflated frame over 10 MB");
    } else {
      throw new Error(`unknown framing byte 0x${marker.toString(16)}`);
    }
    const decoded = Message.decode(body);
    const problem = Message.verify(decoded);
    if (problem) throw new Error(`frame ${frames.length}: ${problem}`);
    frames.push({
      marker,
      size: frame.length,
      inflated_size: body.length,
      message: Message.toObject(decoded, {
        enums: String,
        longs: String,
        bytes: String,
        defaults: false,
        oneofs: true,
      }),
    });
  }
  process.stdout.write(JSON.stringify(frames));
}

main();
