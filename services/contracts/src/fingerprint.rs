//! Content fingerprints for grouping near-duplicate posts (the same hoax copied with a changed
//! word, other hashtags or emoji). A 64-bit simhash: similar texts differ in few bits, so
//! "same narrative" becomes a cheap Hamming-distance check.

/// Word shingle width: long enough that shared stopwords alone do not make unrelated posts
/// look alike. Single words are hashed too: with shingles alone one changed word in a 30-word
/// post moves 3 of ~28 features and flipped ~14 bits; adding words brings that to ~7 while
/// unrelated posts stay 25+ bits apart (see tests/fingerprint.rs).
const SHINGLE_WORDS: usize = 3;
/// Below this many words there are too few word shingles to vote on 64 bits; character
/// shingles keep short posts comparable.
const MIN_WORDS_FOR_WORD_SHINGLES: usize = 8;
const SHINGLE_CHARS: usize = 4;

/// 64-bit simhash of `text` as 16 lowercase hex chars.
///
/// Normalisation drops what copy-paste chains change freely: case, punctuation, emoji,
/// elongated letters, hashtags, mentions' `@` and URLs.
pub fn fingerprint(text: &str) -> String {
    let words = normalized_words(text);
    let mut votes = [0i32; 64];
    let mut vote = |shingle: &str| {
        let hash = shingle_hash(shingle);
        for (bit, vote) in votes.iter_mut().enumerate() {
            *vote += if hash >> bit & 1 == 1 { 1 } else { -1 };
        }
    };
    if words.len() >= MIN_WORDS_FOR_WORD_SHINGLES {
        for word in &words {
            vote(word);
        }
        for window in words.windows(SHINGLE_WORDS) {
            vote(&window.join(" "));
        }
    } else {
        let chars: Vec<char> = words.join(" ").chars().collect();
        for window in chars.windows(SHINGLE_CHARS.min(chars.len()).max(1)) {
            vote(&window.iter().collect::<String>());
        }
    }
    let hash = votes
        .iter()
        .enumerate()
        .filter(|(_, &vote)| vote > 0)
        .fold(0u64, |hash, (bit, _)| hash | 1 << bit);
    format!("{hash:016x}")
}

/// Number of differing bits between two fingerprints; `None` if either is not 16 hex chars.
pub fn hamming(a: &str, b: &str) -> Option<u32> {
    Some((parse_fingerprint(a)? ^ parse_fingerprint(b)?).count_ones())
}

/// The 64 bits of a fingerprint; `None` unless it is exactly 16 hex chars.
pub fn parse_fingerprint(fingerprint: &str) -> Option<u64> {
    // from_str_radix alone would also accept a leading `+`.
    if fingerprint.len() != 16 || !fingerprint.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(fingerprint, 16).ok()
}

/// Words as copy-paste chains leave them: lowercase, split on punctuation and emoji, and every
/// run of a repeated character collapsed, so elongations (`bangeeet`, `hoaxxx`) read as the
/// plain word. Collapsing every run, not only long ones, is what makes any elongation edit
/// invisible; `kpps` becoming `kps` on both sides costs nothing.
fn normalized_words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .filter(|token| !token.starts_with('#') && !is_url(token))
        .flat_map(|token| token.split(|c: char| !c.is_alphanumeric()))
        .filter(|word| !word.is_empty())
        .map(|word| {
            let mut collapsed = String::with_capacity(word.len());
            for c in word.chars().flat_map(char::to_lowercase) {
                if !collapsed.ends_with(c) {
                    collapsed.push(c);
                }
            }
            collapsed
        })
        .collect()
}

fn is_url(token: &str) -> bool {
    let token = token.to_ascii_lowercase();
    token.starts_with("http://") || token.starts_with("https://") || token.starts_with("www.")
}

/// FNV-1a with a splitmix64 finaliser: stable across Rust versions and platforms (unlike
/// `DefaultHasher`), so fingerprints stored in Kafka stay comparable, and well mixed in every
/// bit, which simhash needs.
fn shingle_hash(shingle: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in shingle.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}
