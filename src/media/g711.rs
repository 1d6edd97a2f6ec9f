//! G.711 μ-law and A-law (ITU-T G.711), one byte per 8 kHz sample.

use super::Codec;

pub fn encode(codec: Codec, pcm: &[i16], out: &mut Vec<u8>) {
    out.reserve(pcm.len());
    match codec {
        Codec::Pcmu => out.extend(pcm.iter().map(|&s| audio_codec_algorithms::encode_ulaw(s))),
        Codec::Pcma => out.extend(pcm.iter().map(|&s| audio_codec_algorithms::encode_alaw(s))),
    }
}

/// One sample in `codec`.
pub fn encode_sample(codec: Codec, s: i16) -> u8 {
    match codec {
        Codec::Pcmu => audio_codec_algorithms::encode_ulaw(s),
        Codec::Pcma => audio_codec_algorithms::encode_alaw(s),
    }
}

/// One code in `codec`, as a linear sample.
pub fn decode_sample(codec: Codec, b: u8) -> i16 {
    match codec {
        Codec::Pcmu => audio_codec_algorithms::decode_ulaw(b),
        Codec::Pcma => audio_codec_algorithms::decode_alaw(b),
    }
}

pub fn decode(codec: Codec, payload: &[u8], out: &mut Vec<i16>) {
    out.reserve(payload.len());
    match codec {
        Codec::Pcmu => out.extend(
            payload
                .iter()
                .map(|&b| audio_codec_algorithms::decode_ulaw(b)),
        ),
        Codec::Pcma => out.extend(
            payload
                .iter()
                .map(|&b| audio_codec_algorithms::decode_alaw(b)),
        ),
    }
}

/// The 256-entry table that maps each `from` code to the `to` code of the
/// same sample (decode to linear, encode again; ITU-T G.711 §4 / Appendix:
/// the direct A-law <-> μ-law conversion), computed once. For `from == to`
/// it is the identity.
pub fn transcode_table(from: Codec, to: Codec) -> &'static [u8; 256] {
    static TABLES: std::sync::LazyLock<[[u8; 256]; 2]> = std::sync::LazyLock::new(|| {
        let mut tables = [[0u8; 256]; 2];
        for code in 0..=255u8 {
            let i = usize::from(code);
            tables[0][i] =
                audio_codec_algorithms::encode_alaw(audio_codec_algorithms::decode_ulaw(code));
            tables[1][i] =
                audio_codec_algorithms::encode_ulaw(audio_codec_algorithms::decode_alaw(code));
        }
        tables
    });
    static IDENTITY: [u8; 256] = {
        let mut t = [0u8; 256];
        let mut i = 0;
        while i < 256 {
            t[i] = i as u8;
            i += 1;
        }
        t
    };
    match (from, to) {
        (Codec::Pcmu, Codec::Pcma) => &TABLES[0],
        (Codec::Pcma, Codec::Pcmu) => &TABLES[1],
        _ => &IDENTITY,
    }
}

/// The encoding of digital silence (0) in `codec`.
pub fn silence_byte(codec: Codec) -> u8 {
    match codec {
        Codec::Pcmu => 0xFF,
        Codec::Pcma => 0xD5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_round_trips() {
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let mut enc = Vec::new();
            encode(codec, &[0; 4], &mut enc);
            assert!(
                enc.iter().all(|&b| b == silence_byte(codec)),
                "{codec:?} {enc:?}"
            );
            let mut dec = Vec::new();
            decode(codec, &enc, &mut dec);
            assert!(dec.iter().all(|&s| s.abs() < 16));
        }
    }

    #[test]
    fn transcode_table_matches_decode_then_encode_for_every_code() {
        for (from, to) in [
            (Codec::Pcmu, Codec::Pcma),
            (Codec::Pcma, Codec::Pcmu),
            (Codec::Pcmu, Codec::Pcmu),
            (Codec::Pcma, Codec::Pcma),
        ] {
            let table = transcode_table(from, to);
            let codes: Vec<u8> = (0..=255).collect();
            let mut pcm = Vec::new();
            decode(from, &codes, &mut pcm);
            let mut expected = Vec::new();
            encode(to, &pcm, &mut expected);
            if from == to {
                // Identity, not decode/encode: G.711 round trips except for
                // μ-law's two zeros (0x7F and 0xFF both decode to 0).
                assert_eq!(&table[..], &codes[..]);
            } else {
                assert_eq!(&table[..], &expected[..], "{from:?} -> {to:?}");
            }
        }
        // Silence maps to silence.
        assert_eq!(
            transcode_table(Codec::Pcmu, Codec::Pcma)[0xFF],
            silence_byte(Codec::Pcma)
        );
    }

    #[test]
    fn loud_samples_keep_sign_and_size() {
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let mut enc = Vec::new();
            encode(codec, &[12000, -12000], &mut enc);
            let mut dec = Vec::new();
            decode(codec, &enc, &mut dec);
            assert!(
                (dec[0] - 12000).abs() < 600 && (dec[1] + 12000).abs() < 600,
                "{dec:?}"
            );
        }
    }
}
