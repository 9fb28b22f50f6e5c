//! Per-call overhead of the safe API over the raw C call, for a tiny module
//! (add of two 4-element f32 arrays). Prints ns per call for:
//!   raw     tessera_module_run + tessera_tensor_free on existing tensors
//!   safe    Module::run(&[&a, &b]) on the same tensors (+ drop of the output)
//!   views   Tensor::view x2 + Module::run + drop (zero-copy slices in)
//! Run: cargo run --release --example overhead (docs/perf.md).
use std::time::Instant;
use tessera::{sys, CompileOptions, Context, Tensor};

fn main() -> tessera::Result<()> {
    let ctx = Context::new()?;
    let dev = ctx.device("cpu")?;
    let m = ctx.compile("func @main(%a: tensor<N x f32>, %b: tensor<N x f32>) -> tensor<N x f32> {\n  %c = add(%a, %b)\n  return %c\n}\n", &dev, &CompileOptions::default())?;
    let (a, b) = ([1.0f32, 2.0, 3.0, 4.0], [0.5f32; 4]);
    let (ta, tb) = (Tensor::view(&ctx, &[4], &a)?, Tensor::view(&ctx, &[4], &b)?);
    let iters = 200_000;
    let best = |f: &mut dyn FnMut()| {
        (0..5)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..iters {
                    f();
                }
                t.elapsed().as_nanos() as f64 / iters as f64
            })
            .fold(f64::INFINITY, f64::min)
    };
    let raw = best(&mut || unsafe {
        let ins = [ta.as_ptr(), tb.as_ptr()];
        let mut out = [std::ptr::null_mut(); 1];
        let st = sys::tessera_module_run(m.as_ptr(), std::ptr::null(), 2, ins.as_ptr(), 1, out.as_mut_ptr());
        assert!(st.is_null());
        sys::tessera_tensor_free(out[0]);
    });
    let safe = best(&mut || {
        let out = m.run(&[&ta, &tb]).unwrap();
        std::hint::black_box(&out);
    });
    let views = best(&mut || {
        let out = m.run(&[&Tensor::view(&ctx, &[4], &a).unwrap(), &Tensor::view(&ctx, &[4], &b).unwrap()]).unwrap();
        std::hint::black_box(&out);
    });
    println!("raw C call      {raw:8.0} ns/call");
    println!("safe Module::run {safe:8.0} ns/call  overhead {:+.0} ns (target < 2000)", safe - raw);
    println!("views + run     {views:8.0} ns/call  overhead {:+.0} ns", views - raw);
    Ok(())
}
