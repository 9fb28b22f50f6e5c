// Minimal .npy (NumPy format 1.0/2.0/3.0) reading and writing for the
// reference-interpreter test driver. Format: numpy/lib/format.py docs
// ("NPY format"): magic "\x93NUMPY", version, header length, a Python dict
// literal header {'descr', 'fortran_order', 'shape'}, then raw C-order data.
#ifndef TESSERA_TESTS_REFERENCE_NPY_H
#define TESSERA_TESTS_REFERENCE_NPY_H

#include "reference/RefTensor.h"
#include "support/Error.h"

#include <string>

namespace tessera::ref::npy {

// Reads little-endian f8 f4 f2 i8 i4 i2 i1 u1 b1 arrays (C order) as doubles.
// The tensor is labelled with the matching dtype (f2 -> f16). Errors:
// IOError, CorruptData (bad header), Unsupported (other dtypes, Fortran order).
Expected<RefTensor> read(const std::string &path);
// Writes `t` as a little-endian float64 array ('<f8'); every interpreter
// value is a double, so this is lossless.
Error write(const std::string &path, const RefTensor &t);

} // namespace tessera::ref::npy

#endif // TESSERA_TESTS_REFERENCE_NPY_H
