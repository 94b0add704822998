//! `pow`, the one function of the C math library that anything in the
//! functions calls (the SDK's adaptive retry rate limiter, through
//! `f64::powf`), defined here in Rust (the `libm` crate, a port of musl's).
//! The linker then resolves it in the binary itself, and a Lambda cold
//! start no longer loads and relocates `libm.so.6` for one symbol
//! (docs/performance.md, "Init").

/// The C library's `double pow(double, double)`.
#[no_mangle]
pub extern "C" fn pow(x: f64, y: f64) -> f64 {
    libm::pow(x, y)
}

#[cfg(test)]
mod tests {
    use super::pow;

    /// Against values known exactly or computed without `pow` (in a binary
    /// that links this module, `f64::powf` is this very function).
    #[test]
    fn pow_gives_the_c_librarys_answers() {
        assert_eq!(pow(2.0, 10.0), 1024.0);
        assert_eq!(pow(2.0, 0.5), 2f64.sqrt());
        assert_eq!(pow(10.0, -3.0), 0.001);
        assert_eq!(pow(-8.0, 3.0), -512.0);
        assert_eq!(pow(0.0, 0.0), 1.0);
        assert_eq!(pow(f64::INFINITY, -1.0), 0.0);
        assert!(pow(-8.0, 0.5).is_nan());
        for (x, n) in [(1.1f64, 7), (0.3, -5), (123.456, 3)] {
            let ulps = (pow(x, f64::from(n)).to_bits() as i64 - x.powi(n).to_bits() as i64).abs();
            assert!(ulps <= 2, "pow({x}, {n})");
        }
        // The rate limiter's cube root.
        let cube_root = pow(3375.0, 1.0 / 3.0);
        assert!((cube_root - 15.0).abs() < 1e-12, "{cube_root}");
    }
}
