//! cargo test: the safe API against libtessera (run by CTest, rust.cargo_test).
//! Uses the cpu plugin (found beside libtessera) and, when
//! TESSERA_INTERP_DIR is set, the Schedule-IR interpreter test plugin.
use std::sync::Arc;
use tessera::{Bf16, CompileOptions, Context, DType, HostTensor, Program, StatusCode, Tensor};

const ADD: &str = "func @main(%a: tensor<N x f32>, %b: tensor<N x f32>) -> tensor<N x f32> {\n  %c = add(%a, %b)\n  return %c\n}\n";

/// A deterministic pseudo-random sequence in [-1, 1).
fn rand(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn contexts() -> Vec<(Context, &'static str)> {
    let mut v = vec![(Context::new().unwrap(), "cpu")];
    match std::env::var("TESSERA_INTERP_DIR") {
        Ok(dir) => v.push((
            Context::with_plugin_path(Some(&dir), tessera::sys::TESSERA_CONTEXT_FLAG_NO_DEFAULT_PATHS as u32 | tessera::sys::TESSERA_CONTEXT_FLAG_IGNORE_ENVIRONMENT as u32).unwrap(),
            "interp",
        )),
        Err(_) => eprintln!("TESSERA_INTERP_DIR not set: interp target skipped"),
    }
    v
}

#[test]
fn version_plugins_devices() {
    let (v, major, _) = tessera::version().unwrap();
    assert_eq!((v.as_str(), major), ("0.1.0", 0));
    let ctx = Context::new().unwrap();
    let plugins = ctx.plugins().unwrap();
    assert!(plugins.iter().any(|p| p.name == "cpu" && p.state == "loaded"), "{plugins:?}");
    let cpu = ctx.device("cpu").unwrap();
    assert_eq!(cpu.info().kind, 1);
    assert!(cpu.info().compute_units >= 1);
    assert_eq!(ctx.device("nonexistent").err().unwrap().code, StatusCode::NotFound);
}

#[test]
fn add_matches_on_every_target_zero_copy_views() {
    for (ctx, target) in contexts() {
        let dev = ctx.device(target).unwrap();
        let m = ctx.compile(ADD, &dev, &CompileOptions::default()).unwrap();
        assert_eq!(m.inputs().len(), 2);
        assert_eq!(m.inputs()[0].dims, vec![Err("N".to_string())]);
        for n in [1usize, 4, 777] {
            let (a, b) = (rand(n, 1), rand(n, 2));
            let (ta, tb) = (Tensor::view(&ctx, &[n as i64], &a).unwrap(), Tensor::view(&ctx, &[n as i64], &b).unwrap());
            let out = m.run(&[&ta, &tb]).unwrap();
            assert_eq!(out[0].shape(), vec![n as i64]);
            assert_eq!(out[0].dtype(), Some(DType::F32));
            let got = out[0].as_slice::<f32>().unwrap();
            for i in 0..n {
                assert!((got[i] - (a[i] + b[i])).abs() <= 1e-6, "{target} n={n} i={i}");
            }
        }
    }
}

#[test]
fn matmul_against_a_float64_loop() {
    let src = "func @main(%x: tensor<B x K x f32>, %w: tensor<K x N x f32>) -> tensor<B x N x f32> {\n  %y = matmul(%x, %w)\n  return %y\n}\n";
    for (ctx, target) in contexts() {
        let dev = ctx.device(target).unwrap();
        let m = ctx.compile(src, &dev, &CompileOptions::default()).unwrap();
        let (b, k, n) = (3usize, 17usize, 5usize);
        let x = HostTensor::new(vec![b as i64, k as i64], rand(b * k, 3)).unwrap();
        let w = rand(k * n, 4);
        let tw = Tensor::from_slice(&dev, &[k as i64, n as i64], &w).unwrap();
        let xs = x.data.clone();
        let tx = Tensor::from_host(&ctx, x).unwrap(); // moved, zero copy
        let out = m.run(&[&tx, &tw]).unwrap().remove(0).to_host::<f32>().unwrap();
        assert_eq!(out.shape, vec![b as i64, n as i64]);
        for i in 0..b {
            for j in 0..n {
                let r: f64 = (0..k).map(|p| xs[i * k + p] as f64 * w[p * n + j] as f64).sum();
                assert!((out.data[i * n + j] as f64 - r).abs() < 1e-4, "{target}");
            }
        }
    }
}

#[test]
fn errors_carry_code_message_location() {
    let ctx = Context::new().unwrap();
    let dev = ctx.device("cpu").unwrap();
    let bad = "func @main(%a: tensor<N x f32>) -> tensor<N x f32> {\n  %c = frobnicate(%a)\n  return %c\n}\n";
    let opts = CompileOptions { source_name: Some("bad.tsr".into()), ..Default::default() };
    let e = ctx.compile(bad, &dev, &opts).err().unwrap();
    assert_eq!(e.code, StatusCode::InvalidIr);
    assert_eq!(e.location, Some(("bad.tsr".to_string(), 2, 8)));
    assert!(e.to_string().contains("unknown op 'frobnicate'"), "{e}");

    let m = ctx.compile(ADD, &dev, &CompileOptions::default()).unwrap();
    let (a, b) = ([1.0f32; 4], [1.0f32; 5]);
    let e = m.run(&[&Tensor::view(&ctx, &[4], &a).unwrap(), &Tensor::view(&ctx, &[5], &b).unwrap()]).err().unwrap();
    assert_eq!(e.code, StatusCode::ShapeMismatch);
    let d = [1.0f64; 4];
    let e = m.run(&[&Tensor::view(&ctx, &[4], &a).unwrap(), &Tensor::view(&ctx, &[4], &d).unwrap()]).err().unwrap();
    assert_eq!(e.code, StatusCode::InvalidArgument, "{e}");
    let e = m.run(&[&Tensor::view(&ctx, &[4], &a).unwrap()]).err().unwrap();
    assert_eq!(e.code, StatusCode::InvalidArgument);
    assert_eq!(Tensor::view(&ctx, &[3], &a).err().unwrap().code, StatusCode::InvalidArgument);
}

#[test]
fn dlpack_round_trip_and_bf16() {
    let ctx = Context::new().unwrap();
    let dev = ctx.device("cpu").unwrap();
    let t = Tensor::from_slice(&dev, &[2, 3], &[1i64, 2, 3, 4, 5, 6]).unwrap();
    let dl = t.to_dlpack().unwrap();
    drop(t); // the export keeps the memory
    assert_eq!(dl.tensor().ndim, 2);
    let t2 = unsafe { Tensor::from_dlpack(&ctx, dl.into_raw()) }.unwrap();
    assert_eq!(t2.as_slice::<i64>().unwrap(), &[1, 2, 3, 4, 5, 6]);
    assert_eq!(t2.as_slice::<f32>().err().unwrap().code, StatusCode::InvalidArgument);
    let x = [1.5f32, -2.25, 3.3];
    let bf: Vec<Bf16> = x.iter().map(|&v| Bf16::from_f32(v)).collect();
    let tb = Tensor::from_slice(&dev, &[3], &bf).unwrap();
    assert_eq!(tb.dtype(), Some(DType::BF16));
    let back: Vec<f32> = tb.to_host::<Bf16>().unwrap().data.iter().map(|b| b.to_f32()).collect();
    assert_eq!(back, vec![1.5, -2.25, 3.296875]);
}

#[test]
fn reference_interpreter_and_symbols() {
    let ctx = Context::new().unwrap();
    let p = Program::parse(ADD, None).unwrap();
    assert_eq!(p.symbols(None, false).unwrap(), vec!["N"]);
    assert!(p.text().unwrap().contains("add(%a, %b)"));
    let (a, b) = (rand(6, 5), rand(6, 6));
    let out = p.run_reference(None, None, &[&Tensor::view(&ctx, &[6], &a).unwrap(), &Tensor::view(&ctx, &[6], &b).unwrap()], 1).unwrap();
    let got = out[0].to_host::<f32>().unwrap();
    for i in 0..6 {
        assert_eq!(got.data[i], a[i] + b[i]);
    }
    let e = Program::parse("func @main(", Some("x.tsr")).err().unwrap();
    assert_eq!(e.code, StatusCode::InvalidIr);
}

#[test]
fn serialize_and_load() {
    let ctx = Context::new().unwrap();
    let dev = ctx.device("cpu").unwrap();
    let m = ctx.compile(ADD, &dev, &CompileOptions::default()).unwrap();
    let bytes = m.serialize().unwrap();
    let m2 = ctx.load_module(&bytes, &dev).unwrap();
    let a = [2.0f32; 3];
    let t = Tensor::view(&ctx, &[3], &a).unwrap();
    assert_eq!(m2.run(&[&t, &t]).unwrap()[0].as_slice::<f32>().unwrap(), &[4.0; 3]);
    assert_eq!(ctx.load_module(b"garbage", &dev).err().unwrap().code, StatusCode::CorruptData);
}

#[test]
fn runs_from_several_threads() {
    let ctx = Arc::new(Context::new().unwrap());
    let dev = ctx.device("cpu").unwrap();
    let m = ctx.compile(ADD, &dev, &CompileOptions::default()).unwrap();
    std::thread::scope(|s| {
        for t in 0..8u64 {
            let (m, ctx) = (&m, &ctx);
            s.spawn(move || {
                for i in 0..100u64 {
                    let n = 1 + ((t * 31 + i * 7) % 50) as usize;
                    let (a, b) = (rand(n, t * 1000 + i), rand(n, t * 1000 + i + 1));
                    let out = m.run(&[&Tensor::view(ctx, &[n as i64], &a).unwrap(), &Tensor::view(ctx, &[n as i64], &b).unwrap()]).unwrap();
                    let got = out[0].as_slice::<f32>().unwrap();
                    assert!(got.iter().zip(a.iter().zip(&b)).all(|(g, (x, y))| (g - (x + y)).abs() <= 1e-6));
                }
            });
        }
    });
}
