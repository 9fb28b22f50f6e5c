// The result of fusion: a Schedule IR program (what the plugin compiles) plus
// how each kernel operand maps to memory the runtime provides. This is the
// contract between core/fusion (which builds it) and core/runtime (which
// plans buffers, binds symbols and launches).
#ifndef TESSERA_FUSION_FUSEDPROGRAM_H
#define TESSERA_FUSION_FUSEDPROGRAM_H

#include "ir/Module.h"
#include "tessera/sdk/schedule_ir.h"

#include <cstdint>
#include <string>
#include <vector>

namespace tessera::fusion {

// Where one kernel operand's memory comes from.
struct OperandBinding {
  enum class Kind : uint8_t {
    Param,        // the function's parameter `index` (caller's input tensor)
    Result,       // the function's result `index` (output tensor the runtime allocates)
    Intermediate, // FusedProgram::intermediates[index] (planned by the runtime)
    Constant,     // FusedProgram::constants[index] (uploaded once at module load)
  };
  Kind kind = Kind::Param;
  uint32_t index = 0;
};

// A tensor that lives between kernels. Its dims may be symbolic; the runtime
// evaluates them from the bound symbols.
struct Intermediate {
  std::string name; // the Graph IR value name, for dumps
  ir::TensorType type;
};

// Constant data: dense row-major bytes in the dtype's storage encoding.
struct ConstantData {
  std::string name;
  ir::TensorType type; // static shape
  std::vector<uint8_t> bytes;
};

struct KernelPlan {
  // One entry per operand of schedule.kernels[i], in operand order.
  std::vector<OperandBinding> operands;
  // Graph IR ops fused into this kernel, e.g. {"matmul", "add", "relu"}.
  std::vector<std::string> fusedOps;
};

struct FusedProgram {
  // symbols: the function's symbolic dims in a fixed order (the runtime passes
  // their values as the launch scalars, in this order).
  schedule::Program schedule;
  std::vector<KernelPlan> kernels; // launch order == index order
  std::vector<Intermediate> intermediates;
  std::vector<ConstantData> constants;
};

} // namespace tessera::fusion

#endif // TESSERA_FUSION_FUSEDPROGRAM_H
