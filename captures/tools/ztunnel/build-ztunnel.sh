#!/usr/bin/env bash
# Build the REAL ztunnel (istio/ztunnel, Istio ambient-mode node proxy) from the local bare
# git mirror, without any access to GitHub. Crates come from the crates.io registry.
#
# Usage: build-ztunnel.sh [SRC_DIR] [TARGET_DIR]
#   SRC_DIR    where the source is unpacked (default /tmp/ztunnel-src)
#   TARGET_DIR cargo target dir       (default /tmp/ztunnel-target)
# Result: $TARGET_DIR/debug/ztunnel  (debug profile: much faster to build; fine for captures)
# Env: ZT_FEATURES (default "tls-aws-lc,testing"), ZT_PROFILE (default "dev"), CARGO_BUILD_JOBS (default 1)
set -euo pipefail

MIRROR=${MIRROR:-/work/.mirror/istio+ztunnel/repo}
SRC=${1:-/tmp/ztunnel-src}
TARGET=${2:-/tmp/ztunnel-target}
FEATURES=${ZT_FEATURES:-tls-aws-lc,testing}
PROFILE=${ZT_PROFILE:-dev}
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1}

# 0. Host tools. protoc: build.rs compiles proto/*.proto with tonic-prost-build (prost-build
#    needs a protoc binary). cmake: only a fallback for aws-lc-sys (it normally builds with the
#    cc crate alone on x86_64 Linux); harmless to have.
need=()
command -v protoc >/dev/null || need+=(protobuf-compiler)
command -v cmake  >/dev/null || need+=(cmake)
if [ ${#need[@]} -gt 0 ]; then apt-get install -y "${need[@]}"; fi

# 1. Unpack the mirror's HEAD. vendor/ is excluded: it only holds a prebuilt BoringSSL-FIPS for
#    the 'tls-boring' feature, and its large .a blobs are absent from the mirror
#    ("error: invalid object ... for 'vendor/boringssl-fips/linux_arm64/lib/libcrypto.a'").
rm -rf "$SRC"; mkdir -p "$SRC"
git --git-dir="$MIRROR" archive HEAD -- . ':(exclude)vendor' | tar -x -C "$SRC"
git --git-dir="$MIRROR" rev-parse HEAD > "$SRC/.ztunnel-commit"
cd "$SRC"
#    git archive stamps every file with the commit time. Cargo decides freshness by mtime, so
#    after a patched build (ZT_KEYLOG=1) an unpatched re-extract would look OLDER than the last
#    build and cargo would silently keep the patched binary. Touch everything: the ztunnel
#    crate is then always recompiled (about 15 s in debug); registry crates are not.
find . -type f -exec touch {} +
cp Cargo.toml Cargo.toml.orig
cp Cargo.lock Cargo.lock.orig

# 2. Remove the optional git-only dependency. Cargo resolves every dependency listed in
#    Cargo.toml (optional or not), and this one lives only on GitHub:
#      boring-rustls-provider = { git = "https://github.com/janrueth/boring-rustls-provider", optional = true }
#    It is used only by the 'tls-boring' (FIPS) feature, which we do not build. Two edits:
#    (a) drop the dependency line; (b) drop "boring-rustls-provider/fips-only" from the
#    'tls-boring' feature (a feature may not name a dependency that no longer exists).
sed -i -E '/^boring-rustls-provider[[:space:]]*=.*git[[:space:]]*=/d' Cargo.toml
sed -i -E 's/,[[:space:]]*"boring-rustls-provider\/fips-only"//' Cargo.toml
if grep -n 'boring-rustls-provider' Cargo.toml; then echo "patch failed" >&2; exit 1; fi
#    Cargo.lock still lists the three git packages (boring-rustls-provider, boring-additions,
#    boring-sys-additions); cargo prunes them by itself when it re-resolves (no network needed
#    for pruning). We do not pass --locked for that reason.
diff -u Cargo.toml.orig Cargo.toml || true

# 2b. Optional (ZT_KEYLOG=1): let ztunnel honour SSLKEYLOGFILE, for test captures that can be
#     decrypted. Upstream ztunnel never writes a key log. rustls::KeyLogFile is a no-op unless
#     SSLKEYLOGFILE is set, so the wire bytes are unchanged. Two lines in
#     src/tls/certificate.rs, after the ALPN assignment of the HBONE server and client configs.
if [ "${ZT_KEYLOG:-0}" = 1 ]; then
  sed -i -E 's/^( *)(sc|cc)\.alpn_protocols = vec!\[b"h2"\.into\(\)\];$/&\n\1\2.key_log = std::sync::Arc::new(rustls::KeyLogFile::new());/' src/tls/certificate.rs
  [ "$(grep -c 'KeyLogFile::new' src/tls/certificate.rs)" = 2 ] || { echo "keylog patch failed" >&2; exit 1; }
fi

# 3. Build the ztunnel binary only. Features: a rustls crypto provider + 'testing', which is
#    what enables FAKE_CA=true (without it: "fake_ca requires --features testing").
#    tls-aws-lc is what Istio ships (default features), so the ClientHello matches production
#    (its supported_groups include X25519MLKEM768; tls-ring would not).
start=$(date +%s)
cargo build --profile "$PROFILE" --no-default-features --features "$FEATURES" \
    --target-dir "$TARGET" --bin ztunnel
end=$(date +%s)
diff -u Cargo.lock.orig Cargo.lock > "$SRC/Cargo.lock.diff" || true
dir=$TARGET/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
# Keep a named copy so the upstream and key-log builds can sit side by side.
name=ztunnel-$([ "${ZT_KEYLOG:-0}" = 1 ] && echo keylog || echo upstream)
cp "$dir/ztunnel" "$TARGET/$name"
echo "built in $((end-start)) s: $TARGET/$name ($(stat -c %s "$dir/ztunnel") bytes)"
"$TARGET/$name" version
