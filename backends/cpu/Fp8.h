// OCP 8-bit floating point (OFP8 v1.0) conversions used by generated code:
// decoding through 256-entry tables, encoding through helper functions the
// JIT resolves by address (encoding is rare: stores and casts to fp8).
#ifndef TESSERA_BACKENDS_CPU_FP8_H
#define TESSERA_BACKENDS_CPU_FP8_H

#include <cstdint>

namespace tessera::cpu {

// Value of each fp8 code (NaN codes decode to NaN).
float decodeE4M3(uint8_t code);
float decodeE5M2(uint8_t code);

// Round-to-nearest-even encoding. Without saturation, overflow gives NaN
// (e4m3fn has no infinities) or +-inf (e5m2); with it, finite overflow and
// infinities clamp to +-max finite (448 / 57344). NaN stays NaN.
extern "C" uint8_t tessera_cpu_f32_to_e4m3(float x, int32_t saturate);
extern "C" uint8_t tessera_cpu_f32_to_e5m2(float x, int32_t saturate);

} // namespace tessera::cpu

#endif // TESSERA_BACKENDS_CPU_FP8_H
