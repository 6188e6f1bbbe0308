#!/bin/sh
# Builds a corpus of real text for `mr bench --corpus DIR`: public-domain books and other
# texts from Debian packages, in English and four other languages, repeated up to a size.
#
#   scripts/real-text-corpus.sh OUT_DIR [SIZE_MIB]     (default 256; needs apt-get as root
#                                                        when the packages are missing)
#
# Texts: Ambrose Bierce's The Devil's Dictionary (1911; dict-devil), Webster's Revised
# Unabridged Dictionary (1913) as the GNU Collaborative International Dictionary of English
# (dict-gcide), and the German, Russian, Spanish and Italian fortune collections
# (fortunes-de, -ru, -es, -it: quotations, poems, anecdotes). Files that are not UTF-8 are left
# out, and bytes that are not UTF-8 are dropped from the dictionaries. The whole set is copied as many times as it takes to reach SIZE_MIB.
set -eu
out=${1:?usage: scripts/real-text-corpus.sh OUT_DIR [SIZE_MIB]}
size_mib=${2:-256}
packages="dict-devil dict-gcide fortunes-de fortunes-ru fortunes-es fortunes-it"
missing=""
for p in $packages; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "real-text-corpus: installing$missing" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing >&2
fi
base=$(mktemp -d)
trap 'rm -rf "$base"' EXIT
# The dictionaries hold a few bytes that are not UTF-8: they are dropped (iconv -c).
zcat /usr/share/dictd/devil.dict.dz | iconv -c -f UTF-8 -t UTF-8 >"$base/en-devils-dictionary.txt"
zcat /usr/share/dictd/gcide.dict.dz | iconv -c -f UTF-8 -t UTF-8 >"$base/en-webster-1913.txt"
for lang in de ru es it; do
    find "/usr/share/games/fortunes/$lang" -type f ! -name '*.dat' | LC_ALL=C sort | while read -r f; do
        if iconv -f UTF-8 -t UTF-8 "$f" >/dev/null 2>&1; then
            cat "$f"
        fi
    done >"$base/$lang-fortunes.txt"
done
set_bytes=$(cat "$base"/*.txt | wc -c)
copies=$(( (size_mib * 1048576 + set_bytes - 1) / set_bytes ))
rm -rf "$out"
mkdir -p "$out"
i=0
while [ "$i" -lt "$copies" ]; do
    for f in "$base"/*.txt; do
        cp "$f" "$out/copy-$i-$(basename "$f")"
    done
    i=$((i + 1))
done
echo "real-text-corpus: $out: $copies copies of $set_bytes bytes ($(du -sh "$out" | cut -f1))" >&2
