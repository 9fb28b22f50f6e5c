// Host-side tensor data for the CLI: dtype conversions, NumPy .npy files,
// random inputs and symbolic dim evaluation. Uses only the public ABI types.
//
// .npy support (NumPy format 1.0/2.0, what numpy.save writes): little-endian
// or byte-order-free dtypes f8 f4 f2 i8 i4 i2 i1 u1 b1, C order only.
// bf16 and fp8 tensors have no NumPy dtype: they are written as float32
// (exact), and inputs of those dtypes are read from any float .npy and
// rounded to nearest even. Other float inputs convert the same way; integer
// and bool inputs must match exactly.
#ifndef TESSERA_CLI_HOSTDATA_H
#define TESSERA_CLI_HOSTDATA_H

#include "tessera/sdk/element.h"
#include "tessera/tessera.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace tessera::cli {

// Element codec shared with plugins and the conformance suite (sdk/element.h).
using sdk::dtypeName;
using sdk::dtypeSize;
using sdk::isFloatDType;
using sdk::loadElement;
using sdk::storeElement;

struct HostArray {
  tessera_dtype_t dtype = TESSERA_DTYPE_F32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
  size_t count() const;
  double at(size_t i) const { return loadElement(dtype, bytes.data() + i * dtypeSize(dtype)); }
};

// Converts to `to`; false (with a reason) for lossy integer conversions.
bool convertArray(const HostArray &in, tessera_dtype_t to, HostArray &out, std::string &error);

bool readNpy(const std::string &path, HostArray &out, std::string &error);
bool writeNpy(const std::string &path, const HostArray &array, std::string &error);

// Deterministic random data for `shape` (splitmix64 from `seed`): floats
// uniform in [-1, 1), scaled by 1/sqrt(n) when rank >= 2 (n = the
// second-to-last dim) so products stay O(1); integers in [0, 8); bools 0/1.
HostArray randomArray(tessera_dtype_t dtype, const std::vector<int64_t> &shape, uint64_t seed);

// Evaluates a dim expression of the ABI ("B", "D*4", "D/H", "(S - 1)//2 + 1")
// under `symbols`. False with a reason for unbound symbols, inexact `/`,
// division by zero or bad syntax.
bool evalDim(const std::string &expr, const std::map<std::string, int64_t> &symbols, int64_t &out,
             std::string &error);

// Parses "B=8,S=128" into `out`; false with a reason on bad syntax.
bool parseBindList(const std::string &text, std::map<std::string, int64_t> &out, std::string &error);

} // namespace tessera::cli

#endif // TESSERA_CLI_HOSTDATA_H
