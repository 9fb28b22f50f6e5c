// Printer for the .tsr text format: canonical form, re-parses to an
// identical module.
#ifndef TESSERA_TEXT_PRINTER_H
#define TESSERA_TEXT_PRINTER_H

#include "ir/Module.h"

#include <string>

namespace tessera::text {

std::string printModule(const ir::Module &module);
std::string printFunction(const ir::Function &fn);
// "func @f(%x: tensor<B x 4 x f32>) -> tensor<B x f32>" with the inferred
// result types (the types of the returned values).
std::string functionSignature(const ir::Function &fn);

} // namespace tessera::text

#endif // TESSERA_TEXT_PRINTER_H
