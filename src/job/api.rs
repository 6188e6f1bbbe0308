//! The public Job API: what a job's map, combine and reduce functions see.

use crate::error::{Error, Result};
use crate::job::ShortKey;
use crate::types::{UserCounters, add_counter};

/// One input record and where it comes from.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// The input file, as found from the input arguments, as text: `%`, `,`, control
    /// characters and bytes that are not UTF-8 percent-encoded ([`crate::data::input::path_text`]).
    pub path: &'a str,
    /// Byte offset of the record in the file (in the decompressed stream for gzip input).
    pub offset: u64,
    /// 1-based line number of the record in its file, when the job asked for line numbers
    /// ([`Job::needs_line_numbers`]); 0 otherwise.
    pub line_number: u64,
    /// The record: a line without its terminator, a whole file (`--input-format whole-file`),
    /// or a 100-byte TeraGen record (`--input-format tera`, which is not always UTF-8: see
    /// [`Record::bytes`]).
    pub text: &'a str,
    /// The record's raw bytes (the same as `text` except for tera records).
    pub bytes: &'a [u8],
}

/// Which attempt of which task runs, and where: what [`Job::attempt_start`] sees.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttemptInfo {
    /// A map attempt (else a reduce attempt).
    pub is_map: bool,
    /// The task's index: the map task's split, or the reduce task's partition.
    pub task: u32,
    /// The attempt's number, from 0 per task.
    pub attempt: u32,
    /// A directory of this worker's own (removed with it), where an attempt may make files.
    pub work_dir: std::path::PathBuf,
    /// A map attempt's input: the ranges of its split, in order.
    pub inputs: Vec<InputRange>,
}

/// A byte range of an input file that a map attempt reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InputRange {
    /// The file, as text, as [`Record::path`] names it.
    pub path: String,
    /// The range's first byte in the file.
    pub start: u64,
    /// Its length in bytes (of the file as stored: a compressed file's whole size).
    pub length: u64,
}

/// Where map emits its intermediate pairs, and counts what it wants to.
pub struct MapContext<'a> {
    pub(crate) sink: &'a mut crate::job::buffer::MapBuffer,
    /// The job whose map emits: the buffer calls its partitioner and combiner.
    pub(crate) job: &'a dyn Job,
    pub(crate) counters: &'a mut UserCounters,
    /// Buffers of `emit_encoded`, lent by the attempt so that encoding allocates nothing per
    /// record once they have grown.
    pub(crate) scratch: &'a mut (Vec<u8>, Vec<u8>),
}

impl MapContext<'_> {
    /// Emits one intermediate pair of raw bytes.
    #[inline]
    pub fn emit(&mut self, key: &[u8], value: &[u8]) {
        self.sink.emit(self.job, key, value);
    }

    /// Emits one intermediate pair whose key is a [`ShortKey`]: the same pair as
    /// `emit(key.bytes().as_slice(), value)`, but a map that builds its keys as integers (a
    /// tokenizer that assembles each word's bytes as it scans them) hands them over as they
    /// are. With a combiner, a key already in the map buffer is found by comparing two
    /// integers and a length, and the key's bytes are never read again.
    ///
    /// ```
    /// # use mr::job::{MapContext, ShortKey};
    /// fn emit_letters(word: &[u8], ctx: &mut MapContext<'_>) {
    ///     // The word's first two letters as the key, built as an integer.
    ///     let prefix = word.iter().take(2).rev().fold(0u64, |k, &b| (k << 8) | u64::from(b));
    ///     ctx.emit_short(ShortKey::from_words([prefix, 0], word.len().min(2)), b"x");
    /// }
    /// ```
    #[inline]
    pub fn emit_short(&mut self, key: ShortKey, value: &[u8]) {
        self.sink.emit_short(self.job, key, value);
    }

    /// Emits one intermediate pair encoded by their codecs.
    ///
    /// ```
    /// # use mr::job::{Codec, Json};
    /// // A key that sorts numerically, and a serde value.
    /// let mut key = Vec::new();
    /// 42u64.encode(&mut key);
    /// assert_eq!(u64::decode(&key).unwrap(), 42);
    /// let mut value = Vec::new();
    /// Json(vec!["a".to_string(), "b".to_string()]).encode(&mut value);
    /// assert_eq!(value, br#"["a","b"]"#);
    /// ```
    pub fn emit_encoded<K: Codec, V: Codec>(&mut self, key: &K, value: &V) {
        let (k, v) = &mut *self.scratch;
        k.clear();
        v.clear();
        key.encode(k);
        value.encode(v);
        self.sink.emit(self.job, k, v);
    }

    /// Adds `amount` to the user counter `group/name`.
    pub fn counter(&mut self, group: &str, name: &str, amount: u64) {
        add_counter(self.counters, group, name, amount);
    }
}

/// Where reduce writes its output.
pub struct ReduceContext<'a> {
    pub(crate) sink: &'a mut dyn Output,
    pub(crate) counters: &'a mut UserCounters,
}

impl ReduceContext<'_> {
    /// Writes the output line `key<TAB>value`.
    pub fn write(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.sink.write_parts(&[key, b"\t", value, b"\n"])
    }

    /// Writes `record` as it is, followed by `terminator` (e.g. `b"\n"`, or nothing for
    /// fixed-size binary records).
    pub fn write_record(&mut self, record: &[u8], terminator: &[u8]) -> Result<()> {
        self.sink.write_parts(&[record, terminator])
    }

    /// Adds `amount` to the user counter `group/name`.
    pub fn counter(&mut self, group: &str, name: &str, amount: u64) {
        add_counter(self.counters, group, name, amount);
    }

    /// Writes the output line `key<TAB>total`, where `total` is the sum of `values` as `u64`
    /// counts (see [`Codec`]): the whole reduce of a job that sums counts
    /// ([`Job::sums_counts`]), as Hadoop's `LongSumReducer` is.
    pub fn write_sum(&mut self, key: &[u8], values: &mut Values<'_>) -> Result<()> {
        let total: u64 = values.decoded::<u64>().sum();
        if let Some(e) = values.take_error() {
            return Err(e);
        }
        self.write(key, itoa::Buffer::new().format(total).as_bytes())
    }
}

/// Adds the count `value` to the count `acc` (both `u64`, see [`Codec`]), in place, with
/// saturation: the fold of a job that sums counts ([`Job::sums_counts`]).
#[inline]
pub(crate) fn add_count(acc: &mut [u8], value: &[u8]) -> Result<()> {
    let acc_len = acc.len();
    match (<&mut [u8; 8]>::try_from(acc), <[u8; 8]>::try_from(value)) {
        (Ok(acc), Ok(value)) => {
            *acc = u64::from_be_bytes(*acc).saturating_add(u64::from_be_bytes(value)).to_be_bytes();
            Ok(())
        }
        (_, Ok(_)) => Err(Error::Job(format!("a count value has {} bytes, not 8", acc_len))),
        (_, Err(_)) => Err(Error::Job(format!("a count value has {} bytes, not 8", value.len()))),
    }
}

/// Receives output bytes (the reduce side's part file).
pub(crate) trait Output {
    /// Writes one output record made of these pieces.
    fn write_parts(&mut self, parts: &[&[u8]]) -> Result<()>;
}

/// The values of one key, in a deterministic order (map task order, then emission order).
/// It lends each value until the next call; [`Values::decoded`] turns it into an iterator.
pub struct Values<'a> {
    source: &'a mut dyn ValueSource,
    error: Option<Error>,
}

impl<'a> Values<'a> {
    pub(crate) fn new(source: &'a mut dyn ValueSource) -> Values<'a> {
        Values { source, error: None }
    }

    /// The next raw value of this key, or `None` when they are all consumed.
    pub fn next_value(&mut self) -> Option<&[u8]> {
        self.source.next_value()
    }

    /// The values decoded by a codec, as an iterator. A value that does not decode ends the
    /// iteration and fails the attempt.
    ///
    /// ```ignore
    /// let total: u64 = values.decoded::<u64>().sum();
    /// ```
    pub fn decoded<T: Codec>(&mut self) -> Decoded<'_, 'a, T> {
        Decoded { values: self, _type: std::marker::PhantomData }
    }

    pub(crate) fn take_error(&mut self) -> Option<Error> {
        self.error.take()
    }
}

/// Iterator over decoded values; see [`Values::decoded`].
pub struct Decoded<'v, 'a, T> {
    values: &'v mut Values<'a>,
    _type: std::marker::PhantomData<T>,
}

impl<T: Codec> Iterator for Decoded<'_, '_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        if self.values.error.is_some() {
            return None;
        }
        let raw = self.values.source.next_value()?;
        match T::decode(raw) {
            Ok(v) => Some(v),
            Err(e) => {
                self.values.error = Some(e);
                None
            }
        }
    }
}

/// Anything that yields the values of one key.
pub(crate) trait ValueSource {
    fn next_value(&mut self) -> Option<&[u8]>;
}

/// Turns a type into the bytes that cross task boundaries, and back. Keys are sorted and
/// partitioned by their encoding, so an encoding that preserves order gives ordered output.
pub trait Codec: Sized {
    /// Appends the encoding of `self` to `out`.
    fn encode(&self, out: &mut Vec<u8>);
    /// Decodes a value encoded by [`Codec::encode`].
    fn decode(bytes: &[u8]) -> Result<Self>;
}

impl Codec for Vec<u8> {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
    fn decode(bytes: &[u8]) -> Result<Self> {
        Ok(bytes.to_vec())
    }
}

impl Codec for String {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
    fn decode(bytes: &[u8]) -> Result<Self> {
        String::from_utf8(bytes.to_vec()).map_err(|e| Error::Job(format!("a String value is not UTF-8: {e}")))
    }
}

/// Big-endian, so that encoded keys sort numerically.
impl Codec for u64 {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }
    fn decode(bytes: &[u8]) -> Result<Self> {
        let b: [u8; 8] =
            bytes.try_into().map_err(|_| Error::Job(format!("a u64 value has {} bytes, not 8", bytes.len())))?;
        Ok(u64::from_be_bytes(b))
    }
}

/// Big-endian with the sign bit flipped, so that encoded keys sort numerically.
impl Codec for i64 {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&((*self as u64) ^ (1 << 63)).to_be_bytes());
    }
    fn decode(bytes: &[u8]) -> Result<Self> {
        Ok((u64::decode(bytes)? ^ (1 << 63)) as i64)
    }
}

/// Any serde type, encoded as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Json<T>(pub T);

impl<T: serde::Serialize + serde::de::DeserializeOwned> Codec for Json<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        // Serializing plain data into a Vec cannot fail; a type whose Serialize impl fails
        // on purpose is a bug in that type.
        serde_json::to_writer(out, &self.0).expect("a serde type serializes to JSON");
    }
    fn decode(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map(Json).map_err(|e| Error::Job(format!("a JSON value does not decode: {e}")))
    }
}

/// A MapReduce job: a map function, a reduce function, and optionally a combiner, a
/// partitioner and per-attempt setup and cleanup.
///
/// Keys and values are bytes; [`Codec`] turns them into types. A job runs in worker
/// processes: one attempt at a time per process, so `setup`/`cleanup` may keep per-attempt
/// state behind a mutex.
///
/// ```
/// use mr::job::{Job, MapContext, Record, ReduceContext, Values};
///
/// /// Counts lines by their length.
/// struct LineLengths;
///
/// impl Job for LineLengths {
///     fn map(&self, record: Record<'_>, ctx: &mut MapContext<'_>) -> mr::Result<()> {
///         ctx.emit_encoded(&(record.text.len() as u64), &1u64);
///         Ok(())
///     }
///
///     fn reduce(&self, key: &[u8], values: &mut Values<'_>, ctx: &mut ReduceContext<'_>) -> mr::Result<()> {
///         let length = <u64 as mr::job::Codec>::decode(key)?;
///         let lines: u64 = values.decoded::<u64>().sum();
///         ctx.write(length.to_string().as_bytes(), lines.to_string().as_bytes())
///     }
/// }
/// ```
pub trait Job: Send + Sync {
    /// Maps one input record to intermediate pairs.
    fn map(&self, record: Record<'_>, ctx: &mut MapContext<'_>) -> Result<()>;

    /// Reduces all the values of one key to output.
    fn reduce(&self, key: &[u8], values: &mut Values<'_>, ctx: &mut ReduceContext<'_>) -> Result<()>;

    /// Whether [`Job::combine`], the all-values combiner, runs on map output before it is
    /// written. A job with a folding combiner ([`Job::folds`]) does not need it.
    fn has_combiner(&self) -> bool {
        false
    }

    /// Whether the job has a folding combiner, [`Job::fold`]; it takes precedence over
    /// [`Job::combine`].
    ///
    /// Which combiner to use: a folding combiner when the values of a key can be merged two
    /// at a time into one value of the same kind (sums, counts, minimums, sets), as Spark's
    /// `reduceByKey` does. The sort buffer then keeps one value per key, folds each emitted
    /// value into it in place, and stores no emitted value: the map side costs a hash lookup
    /// per record. The all-values combiner ([`Job::combine`]) sees a batch of a key's values
    /// at a time and may emit any number of values; use it when the result is not one value
    /// of the values' own kind, or when combining needs all the values at once (Streaming's
    /// combiner command).
    ///
    /// Default: [`Job::sums_counts`].
    fn folds(&self) -> bool {
        self.sums_counts()
    }

    /// The folding combiner: merges `value` into `acc`, both values of `key`; `acc` starts as
    /// the key's first value in the map task. It must be associative and commutative, and a
    /// folded value must be a value of the same kind (it is folded again when sorted runs are
    /// merged, and reduce sees folded values). Each map task then writes one value per key.
    /// `acc` is a buffer of the engine's: growing it is allowed, and keeping its length
    /// keeps it in place.
    ///
    /// ```
    /// # use mr::job::{Codec, Job, MapContext, Record, ReduceContext, Values};
    /// /// Counts words; the map side keeps one 8-byte count per distinct word.
    /// struct Count;
    /// impl Job for Count {
    /// #   fn map(&self, _: Record<'_>, _: &mut MapContext<'_>) -> mr::Result<()> { Ok(()) }
    /// #   fn reduce(&self, _: &[u8], _: &mut Values<'_>, _: &mut ReduceContext<'_>) -> mr::Result<()> { Ok(()) }
    ///     fn folds(&self) -> bool {
    ///         true
    ///     }
    ///     fn fold(&self, _key: &[u8], acc: &mut Vec<u8>, value: &[u8]) -> mr::Result<()> {
    ///         let sum = u64::decode(acc)? + u64::decode(value)?;
    ///         acc.copy_from_slice(&sum.to_be_bytes());
    ///         Ok(())
    ///     }
    /// }
    /// ```
    ///
    /// Default: for a job that sums counts ([`Job::sums_counts`]), the sum; otherwise nothing.
    fn fold(&self, _key: &[u8], acc: &mut Vec<u8>, value: &[u8]) -> Result<()> {
        if self.sums_counts() { add_count(acc, value) } else { Ok(()) }
    }

    /// Whether the folding combiner is the sum of counts: values are `u64`s as their
    /// [`Codec`] encodes them (8 bytes, big-endian), added with saturation, and a value of
    /// another length is an error. The engine then adds counts itself, in its table, without
    /// calling [`Job::fold`] (which must still add them: it folds merged runs), as Hadoop's
    /// `LongSumReducer` and Spark's `reduceByKey(_ + _)` do. Word count's map side then costs
    /// one table lookup per word. It takes precedence over [`Job::folds`].
    ///
    /// A counting job says only this: [`Job::folds`] and [`Job::fold`] follow it by default,
    /// and its reduce can be [`ReduceContext::write_sum`].
    ///
    /// ```
    /// # use mr::job::{Job, MapContext, Record, ReduceContext, Values};
    /// /// Counts lines by their first byte.
    /// struct FirstBytes;
    /// impl Job for FirstBytes {
    ///     fn map(&self, record: Record<'_>, ctx: &mut MapContext<'_>) -> mr::Result<()> {
    ///         ctx.emit(&record.bytes[..record.bytes.len().min(1)], &1u64.to_be_bytes());
    ///         Ok(())
    ///     }
    ///     fn reduce(&self, key: &[u8], values: &mut Values<'_>, ctx: &mut ReduceContext<'_>) -> mr::Result<()> {
    ///         ctx.write_sum(key, values)
    ///     }
    ///     fn sums_counts(&self) -> bool {
    ///         true
    ///     }
    /// }
    /// ```
    fn sums_counts(&self) -> bool {
        false
    }

    /// Combines values of one key within one map task into fewer values, each passed to
    /// `out`. As in Hadoop, it may run zero or more times, on any subset of a key's values
    /// (including its own output), so it must agree with reduce (associative and commutative).
    fn combine(&self, _key: &[u8], _values: &mut Values<'_>, _out: &mut dyn FnMut(&[u8])) -> Result<()> {
        Ok(())
    }

    /// The combiner over a map task's whole sorted output: calls [`Job::combine`] once per key.
    /// Override it to run one combiner per task instead (as Streaming does); `counters` are
    /// the attempt's user counters.
    fn combine_sorted(
        &self,
        input: &mut dyn SortedPairs,
        out: &mut dyn FnMut(&[u8], &[u8]),
        _counters: &mut UserCounters,
    ) -> Result<()> {
        while let Some(key) = input.next_key() {
            let key = key.to_vec();
            let mut source = GroupValues { input: &mut *input };
            let mut values = Values::new(&mut source);
            self.combine(&key, &mut values, &mut |v| out(&key, v))?;
            while values.next_value().is_some() {}
            if let Some(e) = values.take_error() {
                return Err(e);
            }
        }
        Ok(())
    }

    /// The reduce task a key goes to, from its encoding. Default: a stable hash (XXH3).
    fn partition(&self, key: &[u8], partitions: u32) -> u32 {
        super::partition::partition(key, partitions)
    }

    /// Whether records need their line numbers (costs a pass over the input when planning).
    fn needs_line_numbers(&self) -> bool {
        false
    }

    /// Called before anything else of each attempt (before `map_setup` or `reduce_setup`),
    /// with which attempt it is and where it runs.
    fn attempt_start(&self, _attempt: &AttemptInfo) -> Result<()> {
        Ok(())
    }

    /// Called when each attempt that [`Job::attempt_start`] began has ended, whether it
    /// succeeded or not.
    fn attempt_end(&self) {}

    /// The running attempt's status message, shown by the status page and `mr status` (a
    /// streaming command's last `reporter:status:` line). Called from the worker's heartbeat,
    /// while the attempt runs on another thread.
    fn status(&self) -> Option<String> {
        None
    }

    /// Called before the first record of each map attempt.
    fn map_setup(&self) -> Result<()> {
        Ok(())
    }

    /// Called after the last record of each successful map attempt, before its output is
    /// sorted; it may still emit.
    fn map_cleanup(&self, _ctx: &mut MapContext<'_>) -> Result<()> {
        Ok(())
    }

    /// Called before the first key of each reduce attempt.
    fn reduce_setup(&self) -> Result<()> {
        Ok(())
    }

    /// Called after the last key of each successful reduce attempt; it may still write.
    fn reduce_cleanup(&self, _ctx: &mut ReduceContext<'_>) -> Result<()> {
        Ok(())
    }
}

/// A map task's sorted pairs, grouped by key, as the combiner sees them.
pub trait SortedPairs {
    /// Moves to the next key, skipping what is left of the current one.
    fn next_key(&mut self) -> Option<&[u8]>;
    /// The next value of the current key.
    fn next_value(&mut self) -> Option<&[u8]>;
}

struct GroupValues<'a> {
    input: &'a mut dyn SortedPairs,
}

impl ValueSource for GroupValues<'_> {
    fn next_value(&mut self) -> Option<&[u8]> {
        self.input.next_value()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job that says only that it sums counts.
    struct Counting;

    impl Job for Counting {
        fn map(&self, _: Record<'_>, _: &mut MapContext<'_>) -> Result<()> {
            Ok(())
        }
        fn reduce(&self, key: &[u8], values: &mut Values<'_>, ctx: &mut ReduceContext<'_>) -> Result<()> {
            ctx.write_sum(key, values)
        }
        fn sums_counts(&self) -> bool {
            true
        }
    }

    /// The values of one key, from a list.
    struct List(std::vec::IntoIter<Vec<u8>>, Vec<u8>);

    impl ValueSource for List {
        fn next_value(&mut self) -> Option<&[u8]> {
            self.1 = self.0.next()?;
            Some(&self.1)
        }
    }

    impl Output for Vec<u8> {
        fn write_parts(&mut self, parts: &[&[u8]]) -> Result<()> {
            parts.iter().for_each(|p| self.extend_from_slice(p));
            Ok(())
        }
    }

    /// Reduces `values` of `key` with `job`, returning what it wrote.
    fn reduce(job: &dyn Job, key: &[u8], values: Vec<Vec<u8>>) -> Result<Vec<u8>> {
        let (mut out, mut counters) = (Vec::new(), UserCounters::new());
        let mut source = List(values.into_iter(), Vec::new());
        let mut ctx = ReduceContext { sink: &mut out, counters: &mut counters };
        job.reduce(key, &mut Values::new(&mut source), &mut ctx)?;
        Ok(out)
    }

    #[test]
    fn a_job_that_sums_counts_folds_and_reduces_by_their_sum() {
        assert!(Counting.folds());
        let mut acc = 2u64.to_be_bytes().to_vec();
        Counting.fold(b"k", &mut acc, &3u64.to_be_bytes()).unwrap();
        assert_eq!(acc, 5u64.to_be_bytes());
        assert!(Counting.fold(b"k", &mut acc, b"short").unwrap_err().to_string().contains("5 bytes, not 8"));
        let counts = [4u64, 0, 38].map(|c| c.to_be_bytes().to_vec()).to_vec();
        assert_eq!(reduce(&Counting, b"word", counts).unwrap(), b"word\t42\n");
        assert!(reduce(&Counting, b"word", vec![b"x".to_vec()]).is_err(), "a value that is not a count");
    }

    #[test]
    fn codecs_round_trip_and_keep_order() {
        let mut encoded: Vec<Vec<u8>> = [-5i64, -1, 0, 3, i64::MAX, i64::MIN]
            .iter()
            .map(|v| {
                let mut out = Vec::new();
                v.encode(&mut out);
                out
            })
            .collect();
        let decoded: Vec<i64> = encoded.iter().map(|b| i64::decode(b).unwrap()).collect();
        assert_eq!(decoded, [-5, -1, 0, 3, i64::MAX, i64::MIN]);
        encoded.sort();
        let sorted: Vec<i64> = encoded.iter().map(|b| i64::decode(b).unwrap()).collect();
        assert_eq!(sorted, [i64::MIN, -5, -1, 0, 3, i64::MAX]);
        assert!(u64::decode(b"abc").is_err());
        let mut out = Vec::new();
        Json((1, "x".to_string())).encode(&mut out);
        assert_eq!(Json::<(u32, String)>::decode(&out).unwrap().0, (1, "x".to_string()));
    }
}
