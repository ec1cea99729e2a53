//! Random numbers the pure cores use (retry jitter, the batcher's spread of paced windows):
//! xorshift64*, seeded by the caller, so a test or a simulation replays exactly. A leaf: it
//! imports nothing of the crate.

/// xorshift64*: small, fast, and good enough to spread retries; not for anything secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Xorshift(u64);

impl Xorshift {
    pub fn new(seed: u64) -> Self {
        // The state must never be zero.
        Self(seed | 1)
    }

    /// A uniform number in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A uniform number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_numbers_in_range() {
        let (mut a, mut b) = (Xorshift::new(42), Xorshift::new(42));
        for _ in 0..1000 {
            let (x, y) = (a.unit(), b.unit());
            assert_eq!(x, y);
            assert!((0.0..1.0).contains(&x));
        }
        assert!(Xorshift::new(0).below(10) < 10, "a zero seed still works");
    }
}
