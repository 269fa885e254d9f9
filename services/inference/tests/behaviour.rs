//! Orderings the shipped model must respect on texts written for this test
//! (not taken from the corpus). Needs the installed base encoder.

mod common;

use patroli_inference::{Classifier, InferenceOptions};

/// (should score higher, should score lower, why)
const PAIRS: &[(&str, &str, &str)] = &[
    (
        "SEBARKAN!!! Surat suara Pilpres sudah dicoblos utk paslon 02, ditemukan 7 kontainer di Tanjung Priok. KPU diam saja, viralkan sebelum dihapus!!",
        "KPU RI mengingatkan pemungutan suara Pemilu 2024 digelar Rabu, 14 Februari 2024 pukul 07.00-13.00 waktu setempat. Bawa KTP-el dan formulir C Pemberitahuan ke TPS Anda.",
        "hoax above the official schedule",
    ),
    (
        "SEBARKAN!!! Surat suara Pilpres sudah dicoblos utk paslon 02, ditemukan 7 kontainer di Tanjung Priok. KPU diam saja, viralkan sebelum dihapus!!",
        "[HOAKS] Beredar pesan bahwa tujuh kontainer surat suara sudah dicoblos ditemukan di Tanjung Priok. KPU memastikan informasi itu tidak benar: surat suara belum dicetak dan tidak ada kontainer di sana.",
        "hoax above its denial",
    ),
    (
        "Info penting dari grup RT: pencoblosan tahun ini bisa lewat SMS ke 0812-0000-1414, gak perlu datang ke TPS. Terusin ke keluarga ya!",
        "Pemilih yang pindah domisili bisa mengurus pindah memilih dengan formulir A di PPS atau KPU kabupaten/kota paling lambat 30 hari sebelum hari pemungutan suara.",
        "procedure hoax above genuine civic info",
    ),
    (
        "BREAKING: KPU resmi menunda Pemilu 2024 ke tahun 2025 karena anggaran habis, surat edarannya sudah keluar tadi pagi. Bagikan sebelum diblokir!",
        "Cek fakta: surat edaran KPU tentang penundaan Pemilu 2024 yang beredar di WhatsApp adalah palsu. KPU menegaskan pemungutan suara tetap 14 Februari 2024.",
        "fake announcement above the fact check",
    ),
    (
        "Ribuan TKA China sudah dapat KTP dan akan ikut nyoblos di TPS Morowali, pribumi jangan diam saja! sebarkan!",
        "Macet parah di tol Cikampek arah Jakarta pagi ini, mending lewat jalur alternatif deh.",
        "SARA provocation above everyday chatter",
    ),
    (
        "Gibran: 'Rakyat miskin tidak usah ikut pemilu, biar orang kaya saja yang memilih.' Videonya sudah dihapus, screenshot ini buktinya!!",
        "Debat cawapres semalam membahas ekonomi digital; Gibran, Muhaimin, dan Mahfud saling menanggapi soal pajak dan UMKM.",
        "fabricated quote above debate news",
    ),
    (
        "Minum air rebusan daun sirsak 3x sehari dijamin sembuhkan kanker dalam seminggu, dokter gak mau kamu tahu ini! Share ke grup keluarga",
        "[SALAH] Klaim air rebusan daun sirsak menyembuhkan kanker dalam seminggu. Faktanya belum ada bukti ilmiah, kata Kemenkes; jangan hentikan pengobatan medis.",
        "health hoax above its debunk",
    ),
];

#[test]
fn shipped_model_orderings_hold() {
    let clf = Classifier::load(&common::shipped_model_dir(), &InferenceOptions::default())
        .expect("load the shipped model");
    let mut failures = Vec::new();
    for (hi, lo, why) in PAIRS {
        let p = clf.score(&[hi, lo]).unwrap();
        eprintln!(
            "{why}: {:.3} > {:.3}  reasons {:?}",
            p[0].score, p[1].score, p[0].top_tokens
        );
        if p[0].score <= p[1].score {
            failures.push(format!("{why}: {:.3} <= {:.3}", p[0].score, p[1].score));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The shipped (stacked) model packs a batch end to end: each post's score,
/// reasons and matches are those it gets alone.
#[test]
fn shipped_model_scores_a_mixed_length_batch_as_each_post_alone() {
    let clf = Classifier::load(&common::shipped_model_dir(), &InferenceOptions::default())
        .expect("load the shipped model");
    let texts: Vec<&str> = PAIRS
        .iter()
        .flat_map(|(hi, lo, _)| [*hi, *lo])
        .chain(["", "ok", "Hoaks!"])
        .collect();
    let batch = clf.score(&texts).unwrap();
    for (text, p) in texts.iter().zip(&batch) {
        let alone = clf.score(&[text]).unwrap().remove(0);
        assert!(
            (alone.score - p.score).abs() < 1e-4,
            "{text:?}: {} alone, {} in the batch",
            alone.score,
            p.score
        );
        assert_eq!(alone.top_tokens, p.top_tokens, "{text:?}");
        let ids = |p: &patroli_inference::Prediction| {
            p.matches
                .iter()
                .map(|m| m.claim.id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&alone), ids(p), "{text:?}");
    }
}
