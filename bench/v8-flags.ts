// Imported first by every benchmark. V8 runs Wasm on its baseline compiler (Liftoff) and
// tiers up to TurboFan in the background; measured here, a module whose work sits in long
// loops inside one call sometimes stays on Liftoff for the whole run (half the speed), so
// results came out bimodal. Benchmarks compile Wasm with TurboFan from the start. Only
// compiles after this line are affected; the library itself never changes V8 flags.
import v8 from "node:v8";

v8.setFlagsFromString("--no-liftoff");
