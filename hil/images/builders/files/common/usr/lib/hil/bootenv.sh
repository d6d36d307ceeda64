# The boot environment, shared by hostapp-update and the health check; GRUB reads it at every boot.
# It is $BOOTENV on the boot partition, a GRUB environment block (1024 bytes, one key=value a line):
#   active=A|B    the slot that boots when no update is pending
#   pending=0|1   an update waits in the other slot: the next boots try it
#   count=N       boots of the pending update so far (GRUB counts them, before any kernel runs)
#   limit=N       after this many failed tries GRUB rolls back (at most 9)
BOOTENV=${BOOTENV:-/mnt/boot/bootenv}

bootenv_load() {
    active=A pending=0 count=0 limit=2
    [ -r "$BOOTENV" ] || return 0
    while IFS='=' read -r key value; do
        case "$key=$value" in
            active=A | active=B) active=$value ;;
            pending=0 | pending=1) pending=$value ;;
            count=[0-9] | count=[0-9][0-9]) count=$value ;;
            limit=[0-9] | limit=[0-9][0-9]) limit=$value ;;
        esac
    done <"$BOOTENV"
}

# Write a temporary file and rename it over the old one, so a power cut leaves one or the other. GRUB
# rewrites the block in place, so it keeps GRUB's size: padded with '#' to 1024 bytes.
bootenv_save() {
    body=$(printf '# GRUB Environment Block\nactive=%s\npending=%s\ncount=%s\nlimit=%s\n_' \
        "$active" "$pending" "$count" "$limit")
    body=${body%_}
    { printf '%s' "$body" && yes '#' | tr -d '\n' | head -c $((1024 - ${#body})); } >"$BOOTENV.tmp" &&
        sync && mv -f "$BOOTENV.tmp" "$BOOTENV" && sync
}

other_slot() {
    if [ "$1" = A ]; then echo B; else echo A; fi
}

# The /dev node of the GPT partition named $1 (the kernel reports PARTNAME; there is no udev here).
part_dev() {
    for uevent in /sys/class/block/*/uevent; do
        if grep -qx "PARTNAME=$1" "$uevent"; then
            echo "/dev/$(sed -n 's/^DEVNAME=//p' "$uevent")"
            return 0
        fi
    done
    return 1
}

# The slot (A|B) the running root filesystem was mounted from.
current_slot() {
    sed -n 's/^PARTNAME=root//p' "/sys/dev/block/$(awk '$5 == "/" { print $3 }' /proc/self/mountinfo)/uevent"
}
