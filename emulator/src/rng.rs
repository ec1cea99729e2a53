//! A seeded pseudo-random generator (SplitMix64). Runs must be reproducible from a seed, across
//! versions of any external crate, so the few random choices the emulator makes (the order of held
//! records against the next event, jitter) come from this.

#[derive(Debug, Clone)]
pub struct SeededRng(u64);

impl SeededRng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A fair coin.
    /// A uniform number in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn coin(&mut self) -> bool {
        self.next_u64() & 1 == 1
    }

    /// A value in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_both_sides_of_the_coin() {
        let a: Vec<bool> = {
            let mut r = SeededRng::new(7);
            (0..64).map(|_| r.coin()).collect()
        };
        let b: Vec<bool> = {
            let mut r = SeededRng::new(7);
            (0..64).map(|_| r.coin()).collect()
        };
        assert_eq!(a, b);
        assert!(a.contains(&true) && a.contains(&false));
    }
}
