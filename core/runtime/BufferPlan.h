// Buffer planning by liveness: which memory each intermediate of a fused
// program occupies while the kernels run in order.
//
// Every intermediate lives over [first, last] in kernel indices (produced at
// `first`, last read at `last`). Intermediates whose intervals do not overlap
// share a slot; a slot is one device buffer as large as its largest tenant.
// The launch ABI passes whole buffers (no offsets), so the "arena" of a run
// is this set of slot buffers; its size is the sum of the slot sizes.
//
// Sizes depend on symbolic dims, so a plan is made per concrete shape (the
// runtime caches it per shape); liveness itself is shape independent.
#ifndef TESSERA_RUNTIME_BUFFERPLAN_H
#define TESSERA_RUNTIME_BUFFERPLAN_H

#include "fusion/FusedProgram.h"

#include <cstdint>
#include <vector>

namespace tessera::runtime {

// Alignment of every slot size (and of every device allocation).
inline constexpr uint64_t kSlotAlignment = 64;

struct Interval {
  uint32_t first = 0; // kernel that produces it
  uint32_t last = 0;  // last kernel that reads it (>= first)
};

// An intermediate that may take over the slot of another one whose last use
// is the kernel that produces it (in place: the kernel reads each element of
// `input` only at the index it writes in `output`).
struct InPlaceCandidate {
  uint32_t output = 0; // intermediate produced by the kernel
  uint32_t input = 0;  // intermediate last read by the same kernel
};

struct BufferPlan {
  std::vector<uint32_t> slotOf;    // slot of each intermediate
  std::vector<uint64_t> slotBytes; // aligned size of each slot
  uint64_t arenaBytes = 0;         // sum of slotBytes: what a run allocates
  // The largest sum of (aligned) sizes of intermediates alive at one kernel:
  // the least memory any plan without in-place reuse can use.
  uint64_t peakLiveBytes = 0;
  uint64_t totalBytes = 0;         // sum of all intermediates (no reuse)
  uint32_t inPlace = 0;            // in-place reuses taken
};

// Liveness of every intermediate over the kernel order. Intermediates no
// kernel touches get [0, 0]. Errors (Internal): an intermediate read before
// the kernel that writes it.
Expected<std::vector<Interval>> computeLiveness(const fusion::FusedProgram &program);

// Kernels that read one intermediate and write another element by element at
// the same indices (single map stage, identical index lists, same element
// size, loads before stores) are in-place candidates.
std::vector<InPlaceCandidate> findInPlaceCandidates(const fusion::FusedProgram &program,
                                                    const std::vector<Interval> &liveness);

// Assigns slots with two greedy orders and keeps the smaller arena: (1) in
// order of first use (larger first on ties), take the best-fitting free
// slot, grow the largest free one, or open a new one; (2) in decreasing size,
// join the smallest slot whose tenants do not overlap, or open a new one.
// `sizes` are bytes per intermediate (unaligned).
BufferPlan planBuffers(const std::vector<Interval> &liveness, const std::vector<uint64_t> &sizes,
                       const std::vector<InPlaceCandidate> &inPlace = {});

inline uint64_t alignSize(uint64_t bytes) {
  return (bytes + kSlotAlignment - 1) / kSlotAlignment * kSlotAlignment;
}

} // namespace tessera::runtime

#endif // TESSERA_RUNTIME_BUFFERPLAN_H
