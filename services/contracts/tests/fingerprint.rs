use patroli_contracts::{fingerprint, hamming};

const HOAX: &str = "BREAKING!!! Surat suara di TPS 05 Kelurahan Cempaka sudah dicoblos duluan untuk paslon nomor 2 sebelum pemilih datang. Petugas KPPS diam saja, Bawaslu tdk bertindak. Sebarkan sebelum dihapus!";
const DATE: &str = "Info dari grup sebelah: pemungutan suara diundur ke tanggal 21 Februari karena logistik KPU belum siap, jadi besok gk usah ke TPS ya. Tolong teruskan ke keluarga dan tetangga kalian";
const FACTCHECK: &str = "[HOAKS] Beredar pesan berantai yang menyebut pemungutan suara diundur. KPU memastikan jadwal tidak berubah, pencoblosan tetap 14 Februari pukul 07.00 sampai 13.00 WIB di seluruh TPS.";
const QUOTE: &str = "Katanya capres itu bilang rakyat kecil tidak perlu ikut pemilu karena suaranya sudah diatur. Ini kutipan asli dari pidatonya di Medan kemarin, cek videonya sendiri kalau gak percaya";
const CHATTER: &str = "Mantap banget bakso di depan kampus tadi siang, kuahnya gurih dan porsinya gede. Besok mau ajak anak-anak kos makan bareng di sana sambil nonton bola";
const NEWS: &str = "Debat capres ketiga malam ini membahas pertahanan, keamanan dan hubungan internasional. Para kandidat saling adu gagasan soal anggaran alutsista dan diplomasi di kawasan ASEAN";

fn distance(a: &str, b: &str) -> u32 {
    hamming(&fingerprint(a), &fingerprint(b)).expect("fingerprints are 16 hex chars")
}

#[test]
fn near_duplicates_are_close() {
    let variants = [
        (HOAX, HOAX.to_uppercase()),
        (HOAX, format!("{HOAX} 😡😡🔥 #Pemilu2024 #TolakCurang")),
        (HOAX, format!("#Pemilu2024 {HOAX} #KawalSuara 🙏")),
        (HOAX, HOAX.replace("nomor 2", "nomor 1")),
        (HOAX, HOAX.replace("Cempaka", "Mawar")),
        (DATE, DATE.replace("keluarga", "saudara")),
        (DATE, DATE.replace("gk", "tidak")),
        (FACTCHECK, FACTCHECK.replace("memastikan", "menegaskan")),
        (QUOTE, QUOTE.replace("Medan", "Surabaya")),
        (QUOTE, format!("{} 😱😱", QUOTE.to_lowercase())),
        (NEWS, NEWS.replace("ketiga", "keempat")),
        (CHATTER, CHATTER.replace("bakso", "mie ayam")),
    ];
    for (original, variant) in &variants {
        let d = distance(original, variant);
        assert!(
            d <= 10,
            "distance {d} for near-duplicate:\n{original}\n{variant}"
        );
    }
}

#[test]
fn unrelated_posts_are_far() {
    let posts = [HOAX, DATE, FACTCHECK, QUOTE, CHATTER, NEWS];
    for (i, a) in posts.iter().enumerate() {
        for b in &posts[i + 1..] {
            let d = distance(a, b);
            assert!(d > 20, "distance {d} for unrelated posts:\n{a}\n{b}");
        }
    }
}

#[test]
fn short_posts_use_character_shingles() {
    let d = distance("Coblos no 2!! 🔥", "COBLOS NO 2 #menang");
    assert_eq!(d, 0);
    assert!(distance("Coblos nomor 2", "Jangan golput") > 10);
}

#[test]
fn fingerprint_is_stable() {
    // A changed value here means every fingerprint already stored in Kafka stops matching new ones
    // (it changed once, when elongation collapsing came in with the takedown service).
    assert_eq!(fingerprint(HOAX), "5b8e18324e25085e");
    assert_eq!(fingerprint(""), "0000000000000000");
}

#[test]
fn elongated_letters_are_invisible() {
    let elongated = HOAX
        .replace("sebelum", "sebeluuuuum")
        .replace("dicoblos", "dicobloooos")
        .replace("BREAKING!!!", "BREAKIIING!!!!!!");
    assert_eq!(distance(HOAX, &elongated), 0);
}

#[test]
fn hamming_rejects_malformed_fingerprints() {
    assert_eq!(hamming("00000000000000ff", "0000000000000000"), Some(8));
    assert_eq!(hamming("ffffffffffffffff", "0000000000000000"), Some(64));
    assert_eq!(hamming("abc", "0000000000000000"), None);
    assert_eq!(hamming("zzzzzzzzzzzzzzzz", "0000000000000000"), None);
    assert_eq!(hamming("+000000000000000", "0000000000000000"), None);
}
