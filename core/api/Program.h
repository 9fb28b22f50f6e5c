// The C ABI's program object: a parsed (or built), verified and inferred
// Graph IR module. Other parts of core/api (compile) read `module` directly.
#ifndef TESSERA_API_PROGRAM_H
#define TESSERA_API_PROGRAM_H

#include "ir/Module.h"

struct tessera_program_t {
  tessera::ir::Module module;
};

#endif // TESSERA_API_PROGRAM_H
