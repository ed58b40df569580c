#!/usr/bin/env node
// Entry of the `virtio-argo` bin (bundled to dist/cli.js) and of `npm start`.
import { main } from "./main.ts";

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(`virtio-argo: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  },
);
