#!/usr/bin/env bash
# quickstart.sh - one command from a fresh Debian 12 machine (as root).
#
#   bash contrib/quickstart.sh mount [MOUNTPOINT]   install deps, build, install,
#                                                   mount a single-node filesystem
#   bash contrib/quickstart.sh test                 install deps, build with
#                                                   ASan+UBSan, run every test
#
# The build lives in ./build (out of tree). Set QFS_SKIP_APT=1 to skip apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
mode=${1:-}

BUILD_DEPS="build-essential autoconf automake pkg-config libfuse3-dev fuse3 \
libuv1-dev libxxhash-dev libsnappy-dev libsodium-dev"
TEST_DEPS="python3 python3-pytest rsync iproute2 nftables procps psmisc kmod bindfs faketime"

install_deps() {
	[ "${QFS_SKIP_APT:-0}" = 1 ] && return 0
	local pkgs="$BUILD_DEPS"
	[ "$1" = test ] && pkgs="$pkgs $TEST_DEPS"
	# only call apt-get when something is missing
	local missing=""
	for p in $pkgs; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	echo "quickstart: installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q || echo "quickstart: apt-get update failed; trying the install anyway"
	# shellcheck disable=SC2086
	apt-get install -y -q --no-install-recommends $missing
}

configure_build() {
	local flags="$1"
	autoreconf -fi
	mkdir -p build
	cd build
	# shellcheck disable=SC2086
	"$top/configure" $flags
	make -j"$(nproc)"
}

case "$mode" in
mount)
	mnt=${2:-/mnt/quorumfs}
	install_deps mount
	configure_build "--prefix=/usr/local --sysconfdir=/etc --localstatedir=/var"
	make install
	mkdir -p "$mnt"
	if mountpoint -q "$mnt"; then
		echo "quickstart: $mnt is already a mount point; unmount it first (fusermount3 -u $mnt)"
		exit 1
	fi
	if [ ! -x /usr/local/bin/quorumfs ]; then
		echo "quickstart: this build has no quorumfs mount daemon yet; built and installed what exists:"
		ls /usr/local/bin/quorum* 2>/dev/null || true
		exit 0
	fi
	/usr/local/bin/quorumfs "$mnt"
	echo "quickstart: quorumfs mounted at $mnt (data in /var/lib/quorumfs)."
	echo "            try: echo hello > $mnt/hello.txt && cat $mnt/hello.txt"
	echo "            unmount: fusermount3 -u $mnt"
	;;
test)
	install_deps test
	configure_build "--enable-asan --enable-ubsan --enable-werror"
	make -j"$(nproc)" check || { cat test-suite.log 2>/dev/null | tail -n 200; exit 1; }
	;;
*)
	echo "usage: $0 mount [MOUNTPOINT] | test" >&2
	exit 2
	;;
esac
