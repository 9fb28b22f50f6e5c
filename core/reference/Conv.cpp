// NCHW conv2d and 2-D pooling as direct loops over the output.
#include "reference/Ops.h"

#include <cmath>
#include <limits>

namespace tessera::ref {

namespace {

Error invalid(std::string message) { return makeError(ErrorCode::InvalidArgument, std::move(message)); }

// Output extent of a window sweep: floor((in + pads - dilation*(k-1) - 1) /
// stride) + 1 (PyTorch Conv2d / MaxPool2d docs, "Shape" section).
Expected<int64_t> windowOutput(int64_t in, int64_t padLo, int64_t padHi, int64_t k, int64_t stride,
                               int64_t dilation, const char *what) {
  if (stride < 1 || dilation < 1 || k < 1 || padLo < 0 || padHi < 0)
    return invalid(std::string(what) + ": kernel, stride and dilation must be >= 1 and padding >= 0");
  int64_t span = dilation * (k - 1) + 1;
  int64_t padded = in + padLo + padHi;
  if (padded < span)
    return makeError(ErrorCode::ShapeMismatch, std::string(what) + ": window of extent " + std::to_string(span) +
                                                   " does not fit the padded input of extent " +
                                                   std::to_string(padded));
  return (padded - span) / stride + 1;
}

} // namespace

Expected<RefTensor> conv2d(const RefTensor &x, const RefTensor &w, const RefTensor *bias, const Conv2dParams &p) {
  if (x.rank() != 4 || w.rank() != 4)
    return invalid("conv2d expects a rank-4 NCHW input and OIHW weight, got " + x.typeString() + " and " +
                   w.typeString());
  int64_t n = x.shape[0], c = x.shape[1], h = x.shape[2], wd = x.shape[3];
  int64_t o = w.shape[0], cg = w.shape[1], kh = w.shape[2], kw = w.shape[3];
  int64_t g = p.groups;
  if (g < 1 || c % g != 0 || o % g != 0)
    return makeError(ErrorCode::ShapeMismatch, "conv2d groups = " + std::to_string(g) + " must divide the " +
                                                   std::to_string(c) + " input and " + std::to_string(o) +
                                                   " output channels");
  if (cg != c / g)
    return makeError(ErrorCode::ShapeMismatch, "conv2d weight " + shapeString(w.shape) + " has " +
                                                   std::to_string(cg) + " input channels per group; the input " +
                                                   shapeString(x.shape) + " with groups = " + std::to_string(g) +
                                                   " needs " + std::to_string(c / g));
  if (bias && (bias->rank() != 1 || bias->shape[0] != o))
    return makeError(ErrorCode::ShapeMismatch, "conv2d bias " + shapeString(bias->shape) + " must be [" +
                                                   std::to_string(o) + "]");
  Expected<int64_t> oh = windowOutput(h, p.pads[0], p.pads[2], kh, p.strides[0], p.dilations[0], "conv2d height");
  if (!oh)
    return oh.takeError();
  Expected<int64_t> ow = windowOutput(wd, p.pads[1], p.pads[3], kw, p.strides[1], p.dilations[1], "conv2d width");
  if (!ow)
    return ow.takeError();
  Shape outShape = {n, o, *oh, *ow};
  Expected<int64_t> count = checkedNumElements(outShape);
  if (!count)
    return count.takeError();
  RefTensor out = RefTensor::filled(x.dtype, outShape, 0.0);
  int64_t opg = o / g; // output channels per group
  int64_t idx = 0;
  for (int64_t b = 0; b < n; ++b)
    for (int64_t oc = 0; oc < o; ++oc) {
      int64_t group = oc / opg;
      for (int64_t y = 0; y < *oh; ++y)
        for (int64_t xo = 0; xo < *ow; ++xo, ++idx) {
          double acc = bias ? bias->data[oc] : 0.0;
          for (int64_t ci = 0; ci < cg; ++ci) {
            int64_t ic = group * cg + ci;
            for (int64_t ky = 0; ky < kh; ++ky) {
              int64_t iy = y * p.strides[0] - p.pads[0] + ky * p.dilations[0];
              if (iy < 0 || iy >= h)
                continue; // zero padding
              for (int64_t kx = 0; kx < kw; ++kx) {
                int64_t ix = xo * p.strides[1] - p.pads[1] + kx * p.dilations[1];
                if (ix < 0 || ix >= wd)
                  continue;
                acc += x.data[((b * c + ic) * h + iy) * wd + ix] * w.data[((oc * cg + ci) * kh + ky) * kw + kx];
              }
            }
          }
          out.data[idx] = acc;
        }
    }
  return out;
}

Expected<RefTensor> pool2d(PoolKind kind, const RefTensor &x, const Pool2dParams &p) {
  if (x.rank() < 2)
    return invalid("pooling expects rank >= 2 (..., H, W), got " + x.typeString());
  int64_t h = x.shape[x.shape.size() - 2], wd = x.shape.back();
  Expected<int64_t> oh = windowOutput(h, p.pads[0], p.pads[2], p.kernel[0], p.strides[0], p.dilations[0],
                                      "pool height");
  if (!oh)
    return oh.takeError();
  Expected<int64_t> ow = windowOutput(wd, p.pads[1], p.pads[3], p.kernel[1], p.strides[1], p.dilations[1],
                                      "pool width");
  if (!ow)
    return ow.takeError();
  Shape outShape = x.shape;
  outShape[outShape.size() - 2] = *oh;
  outShape.back() = *ow;
  Expected<int64_t> count = checkedNumElements(outShape);
  if (!count)
    return count.takeError();
  int64_t planes = x.numElements() / std::max<int64_t>(h * wd, 1);
  if (h * wd == 0)
    planes = 0;
  RefTensor out = RefTensor::filled(x.dtype, outShape, 0.0);
  int64_t idx = 0;
  for (int64_t plane = 0; plane < planes; ++plane)
    for (int64_t y = 0; y < *oh; ++y)
      for (int64_t xo = 0; xo < *ow; ++xo, ++idx) {
        double acc = kind == PoolKind::Max ? -std::numeric_limits<double>::infinity() : 0.0;
        int64_t inBounds = 0;
        bool sawNaN = false;
        for (int64_t ky = 0; ky < p.kernel[0]; ++ky) {
          int64_t iy = y * p.strides[0] - p.pads[0] + ky * p.dilations[0];
          if (iy < 0 || iy >= h)
            continue;
          for (int64_t kx = 0; kx < p.kernel[1]; ++kx) {
            int64_t ix = xo * p.strides[1] - p.pads[1] + kx * p.dilations[1];
            if (ix < 0 || ix >= wd)
              continue;
            double v = x.data[(plane * h + iy) * wd + ix];
            ++inBounds;
            sawNaN |= std::isnan(v);
            acc = kind == PoolKind::Max ? (v > acc ? v : acc) : acc + v;
          }
        }
        if (inBounds == 0 && kind == PoolKind::Max)
          return invalid("max pooling window at output (" + std::to_string(y) + ", " + std::to_string(xo) +
                         ") lies entirely in the padding");
        if (kind == PoolKind::Avg) {
          int64_t divisor = p.countIncludePad ? p.kernel[0] * p.kernel[1] : inBounds;
          acc = divisor ? acc / static_cast<double>(divisor) : std::numeric_limits<double>::quiet_NaN();
        } else if (sawNaN) {
          acc = std::numeric_limits<double>::quiet_NaN(); // NaN propagates, as in PyTorch
        }
        out.data[idx] = acc;
      }
  return out;
}

} // namespace tessera::ref
