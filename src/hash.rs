//! FNV-1a, 64 bits: the processing rules' sampling hash (stable across processes and
//! environments, as the README specifies it) and a quick hasher for short keys whose maps need
//! no defence against chosen collisions (the Parquet writer's dictionaries of a batch's values).

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0100_0000_01b3;

/// FNV-1a of `bytes`.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h = Fnv1a::default();
    std::hash::Hasher::write(&mut h, bytes);
    h.0
}

/// FNV-1a as a [`std::hash::Hasher`].
pub struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Self(OFFSET)
    }
}

impl std::hash::Hasher for Fnv1a {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0 = bytes
            .iter()
            .fold(self.0, |h, b| (h ^ u64::from(*b)).wrapping_mul(PRIME));
    }
}

pub type BuildFnv1a = std::hash::BuildHasherDefault<Fnv1a>;
