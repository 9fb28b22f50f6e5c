#include "runtime/BufferPlan.h"

#include <algorithm>
#include <numeric>

namespace tessera::runtime {

using fusion::OperandBinding;
using schedule::Kernel;
using schedule::OperandRole;

Expected<std::vector<Interval>> computeLiveness(const fusion::FusedProgram &program) {
  size_t n = program.intermediates.size();
  std::vector<int64_t> first(n, -1), last(n, -1);
  for (size_t k = 0; k < program.kernels.size(); ++k) {
    const fusion::KernelPlan &plan = program.kernels[k];
    if (k >= program.schedule.kernels.size() ||
        plan.operands.size() != program.schedule.kernels[k].operands.size())
      return internalError("kernel " + std::to_string(k) + " has " + std::to_string(plan.operands.size()) +
                           " operand bindings, its Schedule IR another count");
    for (size_t o = 0; o < plan.operands.size(); ++o) {
      const OperandBinding &b = plan.operands[o];
      if (b.kind != OperandBinding::Kind::Intermediate)
        continue;
      if (b.index >= n)
        return internalError("kernel " + std::to_string(k) + " operand " + std::to_string(o) +
                             " names intermediate " + std::to_string(b.index) + " of " + std::to_string(n));
      OperandRole role = program.schedule.kernels[k].operands[o].role;
      if (first[b.index] < 0) {
        if (role == OperandRole::In)
          return internalError("intermediate '" + program.intermediates[b.index].name + "' is read by kernel " +
                               std::to_string(k) + " before any kernel writes it");
        first[b.index] = static_cast<int64_t>(k);
      }
      last[b.index] = static_cast<int64_t>(k);
    }
  }
  std::vector<Interval> out(n);
  for (size_t i = 0; i < n; ++i)
    if (first[i] >= 0)
      out[i] = {static_cast<uint32_t>(first[i]), static_cast<uint32_t>(last[i])};
  return out;
}

namespace {

// True when every load of operand `in` in `kernel` precedes the first store
// to `out`, is unmasked and uses exactly the index list of every store.
bool sameIndexElementwise(const Kernel &kernel, int64_t in, int64_t out) {
  if (kernel.stages.size() != 1 || kernel.stages[0].kind != schedule::Stage::Kind::Map)
    return false;
  const std::vector<schedule::IndexExpr> *index = nullptr;
  bool stored = false, loaded = false;
  for (const schedule::Instr &instr : kernel.stages[0].body) {
    bool isLoad = !instr.isStore && instr.op == schedule::Op::Load && instr.operand == in;
    bool isStore = instr.isStore && instr.operand == out;
    if (!isLoad && !isStore)
      continue;
    if (isLoad && (stored || instr.mask))
      return false;
    if (index && *index != instr.index)
      return false;
    index = &instr.index;
    stored |= isStore;
    loaded |= isLoad;
  }
  return stored && loaded;
}

} // namespace

std::vector<InPlaceCandidate> findInPlaceCandidates(const fusion::FusedProgram &program,
                                                    const std::vector<Interval> &liveness) {
  std::vector<InPlaceCandidate> out;
  for (size_t k = 0; k < program.kernels.size() && k < program.schedule.kernels.size(); ++k) {
    const Kernel &kernel = program.schedule.kernels[k];
    const auto &binds = program.kernels[k].operands;
    for (size_t o = 0; o < binds.size(); ++o) {
      if (binds[o].kind != OperandBinding::Kind::Intermediate || kernel.operands[o].role != OperandRole::Out)
        continue;
      uint32_t produced = binds[o].index;
      if (liveness[produced].first != k)
        continue;
      for (size_t i = 0; i < binds.size(); ++i) {
        if (binds[i].kind != OperandBinding::Kind::Intermediate || kernel.operands[i].role != OperandRole::In)
          continue;
        uint32_t dying = binds[i].index;
        if (dying == produced || liveness[dying].last != k)
          continue;
        // Another operand slot bound to the same intermediate would alias.
        size_t uses = std::count_if(binds.begin(), binds.end(), [&](const OperandBinding &b) {
          return b.kind == OperandBinding::Kind::Intermediate && b.index == dying;
        });
        if (uses != 1 || kernel.operands[i].shape != kernel.operands[o].shape ||
            schedule::dtypeSize(kernel.operands[i].dtype) != schedule::dtypeSize(kernel.operands[o].dtype))
          continue;
        if (sameIndexElementwise(kernel, static_cast<int64_t>(i), static_cast<int64_t>(o))) {
          out.push_back({produced, dying});
          break;
        }
      }
    }
  }
  return out;
}

namespace {

// Greedy by size: intermediates in decreasing size order (earlier first on
// ties) join the smallest slot none of whose tenants they overlap; a slot's
// size is that of its first (largest) tenant, so slots never grow.
void planBySize(const std::vector<Interval> &liveness, const std::vector<uint64_t> &aligned,
                const std::vector<int64_t> &inPlaceInput, BufferPlan &plan) {
  size_t n = liveness.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (aligned[a] != aligned[b])
      return aligned[a] > aligned[b];
    return liveness[a].first < liveness[b].first;
  });
  std::vector<std::vector<size_t>> tenants;
  std::vector<bool> placed(n, false);
  for (size_t i : order) {
    const Interval &iv = liveness[i];
    int64_t in = inPlaceInput[i];
    int64_t best = -1;
    for (size_t s = 0; s < tenants.size(); ++s) {
      if (plan.slotBytes[s] < aligned[i])
        continue;
      bool fits = true;
      for (size_t t : tenants[s]) {
        const Interval &o = liveness[t];
        bool overlap = iv.first <= o.last && o.first <= iv.last;
        // In place: the dying input ends exactly where the output starts.
        bool inPlaceOk = static_cast<int64_t>(t) == in && o.last == iv.first;
        if (overlap && !inPlaceOk) {
          fits = false;
          break;
        }
      }
      if (fits && (best < 0 || plan.slotBytes[s] < plan.slotBytes[best] ||
                   (in >= 0 && placed[in] && plan.slotOf[in] == s && plan.slotBytes[s] == plan.slotBytes[best])))
        best = static_cast<int64_t>(s);
    }
    if (best < 0) {
      best = static_cast<int64_t>(tenants.size());
      tenants.emplace_back();
      plan.slotBytes.push_back(aligned[i]);
    }
    if (in >= 0 && placed[in] && plan.slotOf[in] == static_cast<uint32_t>(best) &&
        liveness[in].last == iv.first)
      ++plan.inPlace;
    tenants[best].push_back(i);
    plan.slotOf[i] = static_cast<uint32_t>(best);
    placed[i] = true;
  }
}

} // namespace

BufferPlan planBuffers(const std::vector<Interval> &liveness, const std::vector<uint64_t> &sizes,
                       const std::vector<InPlaceCandidate> &inPlace) {
  size_t n = liveness.size();
  BufferPlan plan;
  plan.slotOf.assign(n, 0);
  std::vector<uint64_t> aligned(n);
  for (size_t i = 0; i < n; ++i) {
    aligned[i] = alignSize(std::max<uint64_t>(sizes[i], 1));
    plan.totalBytes += aligned[i];
  }

  // Peak of simultaneously live bytes: sweep over kernel indices.
  uint32_t kernels = 0;
  for (const Interval &iv : liveness)
    kernels = std::max(kernels, iv.last + 1);
  std::vector<uint64_t> liveAt(kernels + 1, 0);
  for (size_t i = 0; i < n; ++i)
    for (uint32_t k = liveness[i].first; k <= liveness[i].last; ++k)
      liveAt[k] += aligned[i];
  for (uint64_t b : liveAt)
    plan.peakLiveBytes = std::max(plan.peakLiveBytes, b);

  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (liveness[a].first != liveness[b].first)
      return liveness[a].first < liveness[b].first;
    return aligned[a] > aligned[b];
  });

  std::vector<int64_t> inPlaceInput(n, -1);
  for (const InPlaceCandidate &c : inPlace)
    if (c.output < n && c.input < n)
      inPlaceInput[c.output] = c.input;

  std::vector<uint32_t> busyUntil;    // last kernel of the slot's current tenant
  std::vector<int64_t> tenant;        // intermediate now in the slot
  for (size_t i : order) {
    const Interval &iv = liveness[i];
    // In place: take over the dying input's slot when it still holds it.
    if (int64_t in = inPlaceInput[i]; in >= 0) {
      uint32_t s = plan.slotOf[in];
      if (tenant[s] == in && plan.slotBytes[s] >= aligned[i]) {
        plan.slotOf[i] = s;
        tenant[s] = static_cast<int64_t>(i);
        busyUntil[s] = iv.last;
        ++plan.inPlace;
        continue;
      }
    }
    int64_t best = -1, largest = -1;
    for (size_t s = 0; s < plan.slotBytes.size(); ++s) {
      if (busyUntil[s] >= iv.first)
        continue;
      if (plan.slotBytes[s] >= aligned[i] && (best < 0 || plan.slotBytes[s] < plan.slotBytes[best]))
        best = static_cast<int64_t>(s);
      if (largest < 0 || plan.slotBytes[s] > plan.slotBytes[largest])
        largest = static_cast<int64_t>(s);
    }
    if (best < 0 && largest >= 0) {
      best = largest;
      plan.slotBytes[best] = aligned[i];
    }
    if (best < 0) {
      best = static_cast<int64_t>(plan.slotBytes.size());
      plan.slotBytes.push_back(aligned[i]);
      busyUntil.push_back(0);
      tenant.push_back(-1);
    }
    plan.slotOf[i] = static_cast<uint32_t>(best);
    busyUntil[best] = iv.last;
    tenant[best] = static_cast<int64_t>(i);
  }
  for (uint64_t b : plan.slotBytes)
    plan.arenaBytes += b;

  // Keep whichever of the two greedy orders needs less memory.
  BufferPlan bySize;
  bySize.slotOf.assign(n, 0);
  bySize.peakLiveBytes = plan.peakLiveBytes;
  bySize.totalBytes = plan.totalBytes;
  planBySize(liveness, aligned, inPlaceInput, bySize);
  for (uint64_t b : bySize.slotBytes)
    bySize.arenaBytes += b;
  if (bySize.arenaBytes < plan.arenaBytes)
    return bySize;
  return plan;
}

} // namespace tessera::runtime
