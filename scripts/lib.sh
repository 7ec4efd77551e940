# Helpers for scripts/: run as root when needed, install missing Debian packages.

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else echo "need root to run: $*" >&2; return 1; fi
}

apt_install() {
    # Install the Debian packages that are missing; `apt-get update` once first.
    local missing=()
    for pkg in "$@"; do
        # A removed package can leave "config-files" behind: only "installed" counts.
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
            missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}
