#!/usr/bin/env bash
# Regenerates the hotline prompts from prompts.tsv with espeak-ng and sox.
#
#   prompts/generate.sh            every prompt in prompts.tsv
#   prompts/generate.sh NAME...    only these prompts (both languages)
#
# Output: prompts/zh/NAME.wav and prompts/en/NAME.wav, 8 kHz 16-bit mono signed PCM,
# peak-normalised to -3 dBFS, leading/trailing silence trimmed and then padded with
# 30 ms (pieces: digits, number words, units) or 100 ms (phrases) at each end, so that
# chained number prompts sound continuous. Nothing else is written (temporary files live
# in a mktemp folder that is removed on exit). The output is bit-for-bit repeatable: a
# file whose content would not change is not rewritten. Rows whose text starts with '='
# are studio recordings and are never touched. {shown/said} pronunciation hints and the
# other text forms are described in the header of prompts.tsv.
#
# Music on hold (`@music SECONDS`): a slow arpeggio of soft bell-like tones (a sine and a
# quiet octave, 12 ms attack, exponential decay) over four chords of the C major pentatonic
# scale, mixed by sox and peak-normalised to -12 dBFS. It loops without a click: the first
# note starts from zero, every note has faded to exact zero before the end, and the file is
# exactly SECONDS long.
#
# Voices: Mandarin uses espeak-ng's `cmn-latn-pinyin` voice, not `cmn`: in espeak-ng 1.51
# `cmn` reads its own internal pinyin as English ("nin two hao three"; espeak-ng #1028).
# Rates are slow for elderly callers: 150 (zh) and 130 (en) words per minute.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
tsv="$here/prompts.tsv"

ZH_VOICE=cmn-latn-pinyin
ZH_RATE=150
EN_VOICE=en
EN_RATE=130
PIECE_PAD=0.03
PHRASE_PAD=0.1
SEGMENT_GAP=0.3 # between the segments of a mixed-language prompt
PEAK_DB=-3
TRIM_DB=-50d
MUSIC_PEAK_DB=-12
MUSIC_BAR=7.5     # seconds per chord (about; the bars are stretched to fill SECONDS)
MUSIC_TAIL=0.15   # silence before the loop point

die() {
    echo "generate.sh: $*" >&2
    exit 1
}

for tool in espeak-ng sox; do
    command -v "$tool" >/dev/null 2>&1 ||
        die "$tool is not installed (Debian/Ubuntu: apt-get install espeak-ng sox)"
done
espeak-ng --voices | awk '{print $2}' | grep -qx "$ZH_VOICE" ||
    die "espeak-ng has no '$ZH_VOICE' voice (install espeak-ng-data / espeak-ng >= 1.51)"
[ -f "$tsv" ] || die "$tsv not found"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Only the names given on the command line, if any.
declare -A wanted=()
for n in "$@"; do wanted[$n]=1; done

voice_of() { if [ "$1" = zh ]; then echo "$ZH_VOICE"; else echo "$EN_VOICE"; fi; }
rate_of() { if [ "$1" = zh ]; then echo "$ZH_RATE"; else echo "$EN_RATE"; fi; }

# music_score SECONDS: one line per note, 'START DURATION HZ VOLUME'. Each bar holds one
# chord: a bass note on steps 1 and 7 and a 12-step arpeggio over five chord tones; the last
# bar stops after 10 steps and every note is cut short (it decays faster) so that it has died
# away MUSIC_TAIL before the end. Only notes of C D E G A, so overlapping tails stay consonant.
music_score() {
    awk -v secs="$1" -v bar_about="$MUSIC_BAR" -v tail="$MUSIC_TAIL" '
        function note(t, d, hz, v) {
            if (t + d > end) d = end - t
            if (d > 0.2) printf "%.4f %.4f %.2f %.4f\n", t, d, hz, v
        }
        BEGIN {
            # Bass, then five arpeggio tones (Hz), low to high.
            chord[0] = "261.63 392.00 523.25 587.33 659.26 783.99" # C6/9
            chord[1] = "220.00 329.63 440.00 523.25 659.26 783.99" # Am7
            chord[2] = "293.66 440.00 523.25 587.33 659.26 880.00" # D9, no third (D A C D E A)
            chord[3] = "196.00 392.00 440.00 587.33 659.26 783.99" # G6/9, no third (G G A D E G)
            split("1 2 3 4 5 3 2 3 4 5 4 3", pattern)
            bars = int(secs / bar_about + 0.5)
            if (bars < 1) bars = 1
            bar = secs / bars
            step = bar / 12
            end = secs - tail
            for (b = 0; b < bars; b++) {
                split(chord[b % 4], hz)
                for (s = 0; s < 12; s++) {
                    if (b == bars - 1 && s >= 10) break
                    t = b * bar + s * step
                    first = (s % 6 == 0)
                    note(t, 5.0, hz[pattern[s + 1] + 1], first ? 0.1 : 0.075)
                    if (first) note(t, 7.0, hz[1], 0.07)
                }
            }
        }'
}

# music SECONDS OUT: the music on hold (see the header), exactly SECONDS long.
music() {
    local secs=$1 out=$2 n=0 start dur hz vol
    local -a inputs=()
    while read -r start dur hz vol; do
        # Sine plus a quiet octave; attack, exponential decay (100 dB over the note), and a
        # last 100 ms linear fade so that the note ends at exact zero.
        sox -R -D -r 8000 -c 2 -n -r 8000 -c 1 -e floating-point -b 32 "$tmp/note$n.wav" \
            synth "$dur" sine "$hz" sine "$(awk -v f="$hz" 'BEGIN { printf "%.2f", 2 * f }')" \
            remix 1v0.8,2v0.2 fade q 0.012 fade l 0 "$dur" "$dur" fade t 0 "$dur" 0.1 \
            pad "$start"
        inputs+=(-v "$vol" "$tmp/note$n.wav")
        n=$((n + 1))
    done < <(music_score "$secs")
    [ $n -gt 0 ] || die "$lang/$name: '@music $secs' is too short for a single note"
    # Mixed over exactly SECONDS of silence, so the file is exactly that long.
    local samples
    samples=$(awk -v s="$secs" 'BEGIN { printf "%d", s * 8000 + 0.5 }')
    sox -R -D -r 8000 -c 1 -n -e floating-point -b 32 "$tmp/note_bed.wav" synth "${samples}s" sine 0
    sox -R -D -m "$tmp/note_bed.wav" "${inputs[@]}" -r 8000 -b 16 -c 1 -e signed-integer \
        "$out" trim 0 "${samples}s" gain -n "$MUSIC_PEAK_DB"
    rm -f "$tmp"/note*.wav
}

# synth LANG TEXT PAD OUT: render TEXT (segments split on '|', each may start with zh:/en:).
synth() {
    local lang=$1 text=$2 pad=$3 out=$4
    if [[ $text == @tone* ]]; then
        local _ hz secs db
        read -r _ hz secs db <<<"$text"
        [ -n "${db:-}" ] || die "$lang/$name: expected '@tone HZ SECONDS DB', got '$text'"
        sox -R -D -n -r 8000 -b 16 -c 1 -e signed-integer "$out" \
            synth "$secs" sine "$hz" fade t 0.01 "$secs" 0.01 gain -n "$db"
        return
    fi
    if [[ $text == @music* ]]; then
        local _ secs extra
        read -r _ secs extra <<<"$text"
        [[ ${secs:-} =~ ^[0-9]+([.][0-9]+)?$ ]] && [ -z "${extra:-}" ] ||
            die "$lang/$name: expected '@music SECONDS', got '$text'"
        music "$secs" "$out"
        return
    fi
    local -a parts=()
    local i=0 seg seg_lang
    IFS='|' read -r -a segs <<<"$text"
    for seg in "${segs[@]}"; do
        seg_lang=$lang
        case $seg in
        zh:*) seg_lang=zh seg=${seg#zh:} ;;
        en:*) seg_lang=en seg=${seg#en:} ;;
        esac
        [ -n "$seg" ] || die "$lang/$name: empty segment in '$text'"
        # Pronunciation hints: {shown/said} -> said.
        seg=$(sed -E 's#\{[^/}]*/([^}]*)\}#\1#g' <<<"$seg")
        [[ $seg != *[{}]* ]] || die "$lang/$name: malformed {shown/said} hint in '$text'"
        if [ $i -gt 0 ]; then
            sox -R -n -r 22050 -b 16 -c 1 "$tmp/gap$i.wav" trim 0 "$SEGMENT_GAP"
            parts+=("$tmp/gap$i.wav")
        fi
        espeak-ng -v "$(voice_of "$seg_lang")" -s "$(rate_of "$seg_lang")" \
            -w "$tmp/seg$i.wav" -- "$seg"
        parts+=("$tmp/seg$i.wav")
        i=$((i + 1))
    done
    # Headroom, resample, trim silence at both ends, normalise, pad.
    sox -R -D "${parts[@]}" -r 8000 -b 16 -c 1 -e signed-integer "$out" \
        gain -6 rate -v 8000 \
        silence 1 0.005 "$TRIM_DB" reverse silence 1 0.005 "$TRIM_DB" reverse \
        gain -n "$PEAK_DB" pad "$pad" "$pad"
}

# Read and check the whole list before writing anything.
pad=$PHRASE_PAD
lineno=0
declare -a names=() zhs=() ens=() pads=()
declare -A seen=()
while IFS= read -r line || [ -n "$line" ]; do
    lineno=$((lineno + 1))
    case $line in
    '#@ piece'*) pad=$PIECE_PAD; continue ;;
    '#@ phrase'*) pad=$PHRASE_PAD; continue ;;
    '#'* | '') continue ;;
    esac
    IFS=$'\t' read -r name zh en extra <<<"$line"
    [ -n "${en:-}" ] && [ -z "${extra:-}" ] ||
        die "prompts.tsv line $lineno: expected 3 tab-separated columns (name, zh, en)"
    [[ $name =~ ^[a-z0-9_]+$ ]] || die "prompts.tsv line $lineno: bad name '$name'"
    [ -z "${seen[$name]:-}" ] || die "prompts.tsv line $lineno: '$name' is listed twice"
    seen[$name]=1
    names+=("$name") zhs+=("$zh") ens+=("$en") pads+=("$pad")
done <"$tsv"
for n in "${!wanted[@]}"; do
    [ -n "${seen[$n]:-}" ] || die "'$n' is not in prompts.tsv"
done

mkdir -p "$here/zh" "$here/en"
written=0
unchanged=0
studio=0
for i in "${!names[@]}"; do
    name=${names[$i]}
    if [ ${#wanted[@]} -gt 0 ] && [ -z "${wanted[$name]:-}" ]; then continue; fi
    for lang in zh en; do
        if [ $lang = zh ]; then text=${zhs[$i]}; else text=${ens[$i]}; fi
        if [[ $text == =* ]]; then
            studio=$((studio + 1))
            continue
        fi
        dest="$here/$lang/$name.wav"
        synth "$lang" "$text" "${pads[$i]}" "$tmp/out.wav"
        rm -f "$tmp"/seg*.wav "$tmp"/gap*.wav
        if [ -f "$dest" ] && cmp -s "$tmp/out.wav" "$dest"; then
            unchanged=$((unchanged + 1))
        else
            mv "$tmp/out.wav" "$dest"
            written=$((written + 1))
        fi
    done
done
echo "generate.sh: $written written, $unchanged unchanged, $studio studio recordings kept"
