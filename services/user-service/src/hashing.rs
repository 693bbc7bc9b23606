//! Password hashing (argon2id: 19 MiB and two passes per hash) on `slots`
//! threads of its own, at most `slots` hashes at a time.
//!
//! # Why bounded
//! One hash holds 19 MiB and a core for tens of milliseconds. Unbounded, a
//! burst of logins runs one hash per blocking thread (tokio allows 512), so
//! memory grows by 19 MiB per concurrent login and every login slows down
//! together. Here a call waits at most `queue_wait` for one of the `slots`
//! (one per core by default) and is refused with [`Error::Busy`] past it:
//! each answer comes within `queue_wait` plus one hash, either the result
//! or "retry later".
//!
//! # Why threads of its own, each with its own memory
//! The allocator does not hand a freed 19 MiB block back to the system, nor
//! reliably reuse it for the next hash: measured, one thread hashing in a
//! loop grew by 19 MiB a hash up to about 210 MiB, and each thread of
//! tokio's blocking pool that ran a hash could grow as much. So hashes run
//! on `slots` threads of their own, and each thread keeps one argon2 memory
//! ([`Memory`]) that all its hashes reuse: `slots × 19 MiB`, allocated once.
//! The PHC strings are the ones `argon2`'s own `PasswordHasher` writes and
//! reads (checked by the tests below).
//!
//! # Invariant
//! A slot is released when its hash finishes, not when the caller stops
//! waiting: a client that hangs up mid-hash cannot free a slot whose hash
//! still runs (the permit moves into the job).

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use argon2::password_hash::{self, Output, ParamsString, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
use rand::Rng;
use tokio::sync::{Semaphore, oneshot};

use crate::error::{Error, Result};
use crate::metrics::PASSWORD_HASH_WAIT_SECONDS;

/// The seconds a refused caller is told to wait (`retry-after`): slots
/// free up within one hash, so any retry after a second finds a new queue.
pub const BUSY_RETRY_AFTER_SECS: u64 = 1;

/// One hash to run (with the slot it holds), given its thread's memory.
type Job = Box<dyn FnOnce(&mut Memory) + Send>;

/// Runs password hashes, at most `slots` at a time, on `slots` threads.
#[derive(Debug, Clone)]
pub struct Hasher {
    slots: Arc<Semaphore>,
    queue_wait: Duration,
    /// To the hashing threads; they end when every clone is dropped.
    jobs: mpsc::Sender<Job>,
}

impl Hasher {
    /// `slots` hashes at once (0: one per core), each caller waiting at most
    /// `queue_wait` for one; starts the `slots` hashing threads.
    pub fn new(slots: usize, queue_wait: Duration) -> std::io::Result<Self> {
        let n = Self::slots_for(slots);
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..n {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    let mut memory = Memory::default();
                    loop {
                        // One thread waits in recv at a time; the lock is
                        // released before the job runs.
                        let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
                        let Ok(job) = job else { break };
                        // A panicking hash loses its answer (the caller sees
                        // an error), not the thread.
                        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut memory)));
                    }
                })?;
        }
        Ok(Self {
            slots: Arc::new(Semaphore::new(n)),
            queue_wait,
            jobs,
        })
    }

    /// The number of slots `configured` means: itself, or the cores when 0.
    pub fn slots_for(configured: usize) -> usize {
        if configured > 0 {
            return configured;
        }
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    /// A PHC string (argon2id, random salt) of `password`.
    pub async fn hash(&self, password: String) -> Result<String> {
        self.run(move |memory| memory.hash(password.as_bytes()))
            .await?
            .map_err(|e| Error::Hashing(e.to_string()))
    }

    /// Whether `password` matches the PHC string `hash`.
    pub async fn verify(&self, password: String, hash: String) -> Result<bool> {
        self.run(move |memory| memory.verify(password.as_bytes(), &hash))
            .await?
            .map_err(|e| Error::Hashing(e.to_string()))
    }

    /// Verifies `password` against a hash of a password nobody knows, so a
    /// login for an unknown user costs what a known one does (and is
    /// refused as [`Error::Busy`] alike when no slot frees up).
    pub async fn verify_dummy(&self, password: String) -> Result<()> {
        // Computed once, on a hashing thread under a slot like any hash.
        self.run(move |memory| {
            let hash = dummy_hash(memory);
            let _ = memory.verify(password.as_bytes(), hash);
        })
        .await
    }

    /// Runs `work` on a hashing thread once a slot is free; [`Error::Busy`]
    /// when none frees up within `queue_wait`.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Memory) -> T + Send + 'static,
    ) -> Result<T> {
        let started = Instant::now();
        let slot = tokio::time::timeout(self.queue_wait, self.slots.clone().acquire_owned()).await;
        metrics::histogram!(PASSWORD_HASH_WAIT_SECONDS).record(started.elapsed().as_secs_f64());
        // The semaphore is never closed: an error is only the timeout.
        let Ok(Ok(slot)) = slot else {
            return Err(Error::Busy {
                retry_after_secs: BUSY_RETRY_AFTER_SECS,
            });
        };
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |memory| {
            let _slot = slot;
            let _ = tx.send(work(memory));
        });
        self.jobs
            .send(job)
            .map_err(|_| Error::Hashing("the hashing threads have stopped".into()))?;
        rx.await
            .map_err(|_| Error::Hashing("a password hash panicked".into()))
    }
}

/// The argon2 memory of one hashing thread, reused by each of its hashes
/// (every block is written before it is read, so leftovers do not matter).
#[derive(Default)]
pub struct Memory(Vec<Block>);

impl Memory {
    /// The first `params.block_count()` blocks, grown once when too few.
    fn blocks(&mut self, params: &Params) -> &mut [Block] {
        let n = params.block_count();
        if self.0.len() < n {
            self.0.resize(n, Block::default());
        }
        &mut self.0[..n]
    }

    /// The argon2 output of `password` and `salt` under these settings.
    fn compute(
        &mut self,
        argon2: (Algorithm, Version, &Params),
        password: &[u8],
        salt: Salt<'_>,
        len: usize,
    ) -> password_hash::Result<Output> {
        let (algorithm, version, params) = argon2;
        let mut salt_buf = [0u8; 64];
        let salt = salt.decode_b64(&mut salt_buf)?;
        let hasher = Argon2::new(algorithm, version, params.clone());
        Output::init_with(len, |out| {
            Ok(hasher.hash_password_into_with_memory(password, salt, out, self.blocks(params))?)
        })
    }

    /// A PHC string of `password`: argon2id v19, the default parameters
    /// (19 MiB, t=2, p=1), a random salt; what `Argon2::default()` writes.
    pub fn hash(&mut self, password: &[u8]) -> password_hash::Result<String> {
        let salt = new_salt()?;
        let params = Params::default();
        let len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
        let (algorithm, version) = (Algorithm::Argon2id, Version::V0x13);
        let output = self.compute((algorithm, version, &params), password, salt.as_salt(), len)?;
        let phc = PasswordHash {
            algorithm: algorithm.ident(),
            version: Some(version.into()),
            params: ParamsString::try_from(&params)?,
            salt: Some(salt.as_salt()),
            hash: Some(output),
        };
        Ok(phc.to_string())
    }

    /// Whether `password` matches the PHC string `phc` (its own algorithm,
    /// version and parameters; compared in constant time).
    pub fn verify(&mut self, password: &[u8], phc: &str) -> password_hash::Result<bool> {
        let hash = PasswordHash::new(phc)?;
        let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
            return Ok(false);
        };
        let algorithm = Algorithm::try_from(hash.algorithm)?;
        let version = match hash.version {
            Some(v) => Version::try_from(v)?,
            None => Version::default(),
        };
        let params = Params::try_from(&hash)?;
        let computed = self.compute(
            (algorithm, version, &params),
            password,
            salt,
            expected.len(),
        )?;
        // `Output`'s equality is constant-time.
        Ok(computed == expected)
    }
}

/// 16 random bytes from the thread-local CSPRNG, as a PHC salt.
fn new_salt() -> password_hash::Result<SaltString> {
    let mut bytes = [0u8; 16];
    rand::rng().fill(&mut bytes);
    SaltString::encode_b64(&bytes)
}

/// A hash of a password nobody knows (empty if hashing failed, which
/// verifies nothing), computed once.
fn dummy_hash(memory: &mut Memory) -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| memory.hash(b"no-such-user-password").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_and_a_wrong_password_does_not() {
        let h = Hasher::new(1, Duration::from_secs(5)).unwrap();
        let phc = h.hash("password1".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(h.verify("password1".into(), phc.clone()).await.unwrap());
        assert!(!h.verify("password2".into(), phc).await.unwrap());
        h.verify_dummy("password1".into()).await.unwrap();
    }

    #[tokio::test]
    async fn a_caller_that_finds_every_slot_busy_past_the_wait_is_refused() {
        let h = Hasher::new(1, Duration::from_millis(20)).unwrap();
        // Hold the only slot for as long as the test needs it.
        let held = h.slots.clone().acquire_owned().await.unwrap();
        let e = h.hash("password1".into()).await.unwrap_err();
        assert!(matches!(e, Error::Busy { .. }), "{e:?}");
        drop(held);
        assert!(h.hash("password1".into()).await.is_ok());
    }

    #[test]
    fn phc_strings_are_the_ones_the_argon2_crate_writes_and_reads() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let mut m = Memory::default();
        // Ours verifies with the crate's verifier...
        let ours = m.hash(b"password1").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"password1", &parsed)
                .is_ok()
        );
        assert!(
            Argon2::default()
                .verify_password(b"password2", &parsed)
                .is_err()
        );
        // ...the crate's verifies with ours, memory reused and dirty...
        let salt = new_salt().unwrap();
        let theirs = Argon2::default()
            .hash_password(b"password1", &salt)
            .unwrap()
            .to_string();
        assert!(m.verify(b"password1", &theirs).unwrap());
        assert!(!m.verify(b"password2", &theirs).unwrap());
        // ...and both write the same string for the same salt.
        let mine = m
            .compute(
                (Algorithm::Argon2id, Version::V0x13, &Params::default()),
                b"password1",
                salt.as_salt(),
                Params::DEFAULT_OUTPUT_LEN,
            )
            .unwrap();
        assert_eq!(Some(mine), PasswordHash::new(&theirs).unwrap().hash);
        assert!(m.verify(b"password1", "not a phc string").is_err());
    }

    #[test]
    fn zero_slots_means_one_per_core() {
        assert!(Hasher::slots_for(0) >= 1);
        assert_eq!(Hasher::slots_for(3), 3);
    }
}
