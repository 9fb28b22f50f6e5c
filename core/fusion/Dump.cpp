// Text dump of a FusedProgram and its consistency checks.
#include "fusion/Fusion.h"

#include <set>
#include <sstream>

namespace tessera::fusion {

static const char *bindingKindName(OperandBinding::Kind kind) {
  switch (kind) {
  case OperandBinding::Kind::Param: return "param";
  case OperandBinding::Kind::Result: return "result";
  case OperandBinding::Kind::Intermediate: return "intermediate";
  case OperandBinding::Kind::Constant: return "constant";
  }
  return "?";
}

std::string dumpFused(const FusedProgram &program) {
  std::ostringstream out;
  out << schedule::printProgram(program.schedule);
  out << "# bindings\n";
  for (size_t i = 0; i < program.kernels.size(); ++i) {
    const KernelPlan &plan = program.kernels[i];
    out << "#   kernel " << i;
    if (i < program.schedule.kernels.size())
      out << " \"" << program.schedule.kernels[i].name << "\"";
    out << ":";
    for (size_t o = 0; o < plan.operands.size(); ++o)
      out << " " << o << "=" << bindingKindName(plan.operands[o].kind) << plan.operands[o].index;
    out << " ops=[";
    for (size_t k = 0; k < plan.fusedOps.size(); ++k)
      out << (k ? ", " : "") << plan.fusedOps[k];
    out << "]\n";
  }
  for (size_t i = 0; i < program.intermediates.size(); ++i)
    out << "#   intermediate" << i << " %" << program.intermediates[i].name << " "
        << program.intermediates[i].type.str() << "\n";
  for (size_t i = 0; i < program.constants.size(); ++i)
    out << "#   constant" << i << " %" << program.constants[i].name << " " << program.constants[i].type.str()
        << " (" << program.constants[i].bytes.size() << " bytes)\n";
  return out.str();
}

std::string validateFused(const FusedProgram &program, const ir::Function &fn) {
  if (std::string e = schedule::validateProgram(program.schedule); !e.empty())
    return e;
  if (program.kernels.size() != program.schedule.kernels.size())
    return "kernel plan count differs from the schedule's kernel count";
  std::set<uint32_t> stored;
  for (size_t i = 0; i < program.kernels.size(); ++i) {
    const schedule::Kernel &k = program.schedule.kernels[i];
    const KernelPlan &plan = program.kernels[i];
    std::string where = "kernel \"" + k.name + "\": ";
    if (plan.operands.size() != k.operands.size())
      return where + "one binding per operand expected";
    for (size_t o = 0; o < plan.operands.size(); ++o) {
      const OperandBinding &b = plan.operands[o];
      bool out = k.operands[o].role != schedule::OperandRole::In;
      switch (b.kind) {
      case OperandBinding::Kind::Param:
        if (b.index >= fn.params.size()) return where + "param binding out of range";
        if (out) return where + "writes a parameter";
        break;
      case OperandBinding::Kind::Result:
        if (b.index >= fn.returns.size()) return where + "result binding out of range";
        if (out) stored.insert(b.index);
        break;
      case OperandBinding::Kind::Intermediate:
        if (b.index >= program.intermediates.size()) return where + "intermediate binding out of range";
        break;
      case OperandBinding::Kind::Constant:
        if (b.index >= program.constants.size()) return where + "constant binding out of range";
        if (out) return where + "writes a constant";
        break;
      }
    }
  }
  for (uint32_t r = 0; r < fn.returns.size(); ++r)
    if (!stored.count(r))
      return "result " + std::to_string(r) + " is never stored";
  return {};
}

} // namespace tessera::fusion
