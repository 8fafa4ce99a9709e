; berth test guest: a tiny ring-0 program booted as a PVH ELF (by berth's VMM and by qemu).
;
; It enters in 32-bit protected mode without paging (the PVH entry, XEN_ELFNOTE_PHYS32_ENTRY)
; with EBX pointing at the hvm_start_info structure, and then:
;   1. prints the marker line  "berth-guest: hello"  on the 8250 serial port (0x3f8);
;   2. prints "mem_mib=N": the RAM in the PVH memory map (type 1 entries), rounded up to MiB;
;   3. prints "cpus=N": the enabled processor entries of the MP table (Intel MultiProcessor
;      spec), found by its floating pointer "_MP_" in the EBDA (0x9fc00) or 0xf0000-0xfffff;
;      0 when there is none;
;   4. for the first virtio-mmio block device in 0xd0000000 + i*0x1000 (i < 8): initialises it
;      (virtio 1.x, one queue of 8), prints "blk: capacity=N", reads sector 0 and prints its
;      first 32 bytes ("blk: sector0=..."), writes sector 1 with "berth-guest wrote sector 1"
;      ("blk: write status=S"), flushes ("blk: flush status=S");
;   5. with "net" on the command line, for the first virtio-mmio network device: prints
;      "net: mac=…", sends one broadcast frame of ethertype 0x88b5 carrying
;      "berth-guest frame" ("net: sent"), then waits for a frame of that ethertype and prints
;      its first 16 payload bytes ("net: received=…"), skipping other frames;
;      with "rng": reads 16 bytes twice from the first virtio-rng device and prints them
;      in hex ("rng: …");
;      with "vsock": connects from port 5000 to host port 1234 over the first virtio-vsock
;      device ("vsock: connected" or "vsock: refused"), sends "hello from the guest", prints
;      the host's answer ("vsock: received=…") and shuts the connection down;
;   6. with "crash" on the command line: executes ud2 without an IDT (a triple fault);
;      with "tick": prints "tick N" forever, N counting up from 1;
;   7. else prints "berth-guest: done" and exits: with "reset" on the command line through
;      the i8042 (0xfe to port 0x64), otherwise by writing 0 to the debug-exit port 0xf4.
; Build: nasm -f elf64 guest.asm -o guest.o
;        ld -m elf_x86_64 --no-warn-rwx-segments -T guest.ld -o guest.elf guest.o

BITS 32

SERIAL      equ 0x3f8
DEBUG_EXIT  equ 0xf4
MMIO_BASE   equ 0xd0000000
QSIZE       equ 8

section .note.Xen note alloc noexec nowrite align=4
    dd 4                    ; n_namesz
    dd 4                    ; n_descsz
    dd 18                   ; XEN_ELFNOTE_PHYS32_ENTRY
    db "Xen", 0
    dd pvh_start

section .text
global pvh_start
pvh_start:
    cli
    mov esp, stack_top
    mov [start_info], ebx

    mov esi, msg_hello
    call puts

    ; ---- memory: sum of RAM entries of the PVH memmap, in KiB ----
    mov ebx, [start_info]
    mov esi, [ebx + 40]         ; memmap_paddr (low 32 bits)
    mov ecx, [ebx + 48]         ; memmap_entries
    cmp ecx, 64
    jbe .mm_ok
    mov ecx, 64
.mm_ok:
    xor edi, edi                ; KiB total
.mm_loop:
    test ecx, ecx
    jz .mm_done
    cmp dword [esi + 16], 1     ; type RAM
    jne .mm_next
    mov eax, [esi + 8]          ; size low
    mov edx, [esi + 12]         ; size high
    shrd eax, edx, 10           ; size >> 10 (fits: < 4 TiB)
    add edi, eax
.mm_next:
    add esi, 24
    dec ecx
    jmp .mm_loop
.mm_done:
    mov esi, msg_mem
    call puts
    mov eax, edi
    add eax, 1023
    shr eax, 10
    call put_dec
    call newline

    ; ---- CPUs: MP table ----
    mov esi, 0x9fc00
    mov edi, 0xa0000
    call find_mp
    test esi, esi
    jnz .mp_found
    mov esi, 0xf0000
    mov edi, 0x100000
    call find_mp
.mp_found:
    xor edx, edx                ; processor count
    test esi, esi
    jz .mp_done
    mov esi, [esi + 4]          ; physical address of the configuration table
    test esi, esi
    jz .mp_done
    cmp dword [esi], 'PCMP'
    jne .mp_done
    movzx ecx, word [esi + 34]  ; entry count
    add esi, 44
.mp_entry:
    test ecx, ecx
    jz .mp_done
    cmp byte [esi], 0           ; processor entry (20 bytes)
    jne .mp_other
    test byte [esi + 3], 1      ; enabled
    jz .mp_skip_cpu
    inc edx
.mp_skip_cpu:
    add esi, 20
    dec ecx
    jmp .mp_entry
.mp_other:
    add esi, 8
    dec ecx
    jmp .mp_entry
.mp_done:
    mov esi, msg_cpus
    call puts
    mov eax, edx
    call put_dec
    call newline

    call blk_test

    mov esi, str_net
    call cmdline_has
    test eax, eax
    jz .no_net
    call net_test
.no_net:
    mov esi, str_rng
    call cmdline_has
    test eax, eax
    jz .no_rng
    call rng_test
.no_rng:
    mov esi, str_vsock
    call cmdline_has
    test eax, eax
    jz .no_vsock
    call vsock_test
.no_vsock:
    mov esi, str_crash
    call cmdline_has
    test eax, eax
    jz .no_crash
    ud2                         ; no IDT: #UD, #DF, triple fault
.no_crash:
    mov esi, str_tick
    call cmdline_has
    test eax, eax
    jnz tick_loop

    mov esi, msg_done
    call puts
    mov esi, str_reset
    call cmdline_has
    test eax, eax
    jz .debug_exit
    mov al, 0xfe
    out 0x64, al
.debug_exit:
    mov al, 0
    out DEBUG_EXIT, al
.halt:
    hlt
    jmp .halt

tick_loop:
    mov dword [ticks], 0
.next:
    mov ecx, 100000
.delay:
    dec ecx
    jnz .delay
    inc dword [ticks]
    mov esi, msg_tick
    call puts
    mov eax, [ticks]
    call put_dec
    call newline
    jmp .next

; find_mp: ESI = start, EDI = end; returns ESI = floating pointer address or 0.
find_mp:
.loop:
    cmp esi, edi
    jae .none
    cmp dword [esi], '_MP_'
    je .found
    add esi, 16
    jmp .loop
.none:
    xor esi, esi
.found:
    ret

; cmdline_has: ESI = NUL-terminated word; EAX = 1 if the command line contains it.
cmdline_has:
    push ebx
    push edi
    mov ebx, [start_info]
    mov edi, [ebx + 24]         ; cmdline_paddr
    xor eax, eax
    test edi, edi
    jz .out
.pos:
    cmp byte [edi], 0
    je .out
    xor ecx, ecx
.cmp:
    mov dl, [esi + ecx]
    test dl, dl
    jz .yes
    cmp dl, [edi + ecx]
    jne .adv
    inc ecx
    jmp .cmp
.adv:
    inc edi
    jmp .pos
.yes:
    mov eax, 1
.out:
    pop edi
    pop ebx
    ret

; ---- virtio-mmio block ----
blk_test:
    mov ebx, MMIO_BASE
    mov ecx, 8
.probe:
    cmp dword [ebx], 0x74726976 ; "virt"
    jne .probe_next
    cmp dword [ebx + 8], 2      ; block device
    je .found
.probe_next:
    add ebx, 0x1000
    dec ecx
    jnz .probe
    ret
.found:
    mov [blk_base], ebx
    mov dword [ebx + 0x70], 0           ; reset
    mov dword [ebx + 0x70], 1           ; ACKNOWLEDGE
    mov dword [ebx + 0x70], 3           ; | DRIVER
    mov dword [ebx + 0x14], 0
    mov eax, [ebx + 0x10]
    and eax, (1 << 5) | (1 << 9)        ; VIRTIO_BLK_F_RO, VIRTIO_BLK_F_FLUSH
    mov dword [ebx + 0x24], 0
    mov [ebx + 0x20], eax
    mov dword [ebx + 0x24], 1
    mov dword [ebx + 0x20], 1           ; VIRTIO_F_VERSION_1
    mov dword [ebx + 0x70], 11          ; | FEATURES_OK
    test dword [ebx + 0x70], 8
    jnz .features_ok
    mov esi, msg_blk_feat
    call puts
    ret
.features_ok:
    mov dword [ebx + 0x30], 0           ; queue 0
    mov dword [ebx + 0x38], QSIZE
    mov dword [ebx + 0x80], vq_desc
    mov dword [ebx + 0x84], 0
    mov dword [ebx + 0x90], vq_avail
    mov dword [ebx + 0x94], 0
    mov dword [ebx + 0xa0], vq_used
    mov dword [ebx + 0xa4], 0
    mov dword [ebx + 0x44], 1           ; ready
    mov dword [ebx + 0x70], 15          ; | DRIVER_OK

    mov esi, msg_blk_cap
    call puts
    mov eax, [ebx + 0x100]              ; capacity (512-byte sectors), low word
    call put_dec
    call newline

    ; read sector 0
    mov eax, 0                          ; VIRTIO_BLK_T_IN
    mov edx, 0
    call blk_request
    mov esi, msg_blk_read
    call puts
    mov esi, blk_data
    mov ecx, 32
.show:
    mov al, [esi]
    cmp al, 0x20
    jb .dot
    cmp al, 0x7e
    jbe .put
.dot:
    mov al, '.'
.put:
    call putc
    inc esi
    dec ecx
    jnz .show
    call newline

    ; write sector 1
    mov edi, blk_data
    mov ecx, 512
    xor al, al
    rep stosb
    mov esi, str_wrote
    mov edi, blk_data
.copy:
    mov al, [esi]
    test al, al
    jz .copied
    mov [edi], al
    inc esi
    inc edi
    jmp .copy
.copied:
    mov eax, 1                          ; VIRTIO_BLK_T_OUT
    mov edx, 1
    call blk_request
    mov esi, msg_blk_write
    call puts
    movzx eax, byte [blk_status]
    call put_dec
    call newline

    mov eax, 4                          ; VIRTIO_BLK_T_FLUSH
    mov edx, 0
    call blk_request
    mov esi, msg_blk_flush
    call puts
    movzx eax, byte [blk_status]
    call put_dec
    call newline
    ret

; blk_request: EAX = type, EDX = sector; one request of header, 512-byte data, status.
blk_request:
    push ebx
    mov [blk_hdr], eax
    mov dword [blk_hdr + 4], 0
    mov [blk_hdr + 8], edx
    mov dword [blk_hdr + 12], 0
    mov byte [blk_status], 0xff
    ; descriptor 0: header (device reads)
    mov dword [vq_desc + 0], blk_hdr
    mov dword [vq_desc + 4], 0
    mov dword [vq_desc + 8], 16
    mov word [vq_desc + 12], 1          ; NEXT
    mov word [vq_desc + 14], 1
    ; descriptor 1: data (device writes for IN); flush requests carry no data
    mov ecx, 2                          ; status descriptor index
    cmp eax, 4
    je .status_desc
    mov dword [vq_desc + 16], blk_data
    mov dword [vq_desc + 20], 0
    mov dword [vq_desc + 24], 512
    mov word [vq_desc + 28], 1          ; NEXT
    test eax, eax
    jnz .out_dir
    mov word [vq_desc + 28], 3          ; NEXT | WRITE
.out_dir:
    mov word [vq_desc + 30], 2
    jmp .status
.status_desc:
    mov word [vq_desc + 14], 2
    mov dword [vq_desc + 16], 0
    mov ecx, 2
.status:
    mov dword [vq_desc + 32], blk_status
    mov dword [vq_desc + 36], 0
    mov dword [vq_desc + 40], 1
    mov word [vq_desc + 44], 2          ; WRITE
    mov word [vq_desc + 46], 0
    ; flush: header -> status directly (descriptor 2)
    ; avail ring
    movzx eax, word [vq_avail + 2]
    mov edx, eax
    and edx, QSIZE - 1
    mov word [vq_avail + 4 + edx * 2], 0
    inc eax
    mov [vq_avail + 2], ax
    mov ebx, [blk_base]
    mov dword [ebx + 0x50], 0           ; notify queue 0
.wait:
    mov cx, [vq_used + 2]
    cmp cx, ax
    jne .wait
    mov eax, [ebx + 0x60]
    mov [ebx + 0x64], eax               ; acknowledge the interrupt
    pop ebx
    ret

; ---- virtio-mmio network ----
net_test:
    mov ebx, MMIO_BASE
    mov ecx, 8
.probe:
    cmp dword [ebx], 0x74726976
    jne .probe_next
    cmp dword [ebx + 8], 1      ; network device
    je .found
.probe_next:
    add ebx, 0x1000
    dec ecx
    jnz .probe
    mov esi, msg_net_none
    call puts
    ret
.found:
    mov [net_base], ebx
    mov dword [ebx + 0x70], 0
    mov dword [ebx + 0x70], 1
    mov dword [ebx + 0x70], 3
    mov dword [ebx + 0x14], 0
    mov eax, [ebx + 0x10]
    and eax, 1 << 5                     ; VIRTIO_NET_F_MAC
    mov dword [ebx + 0x24], 0
    mov [ebx + 0x20], eax
    mov dword [ebx + 0x24], 1
    mov dword [ebx + 0x20], 1           ; VIRTIO_F_VERSION_1
    mov dword [ebx + 0x70], 11
    test dword [ebx + 0x70], 8
    jnz .features_ok
    mov esi, msg_net_feat
    call puts
    ret
.features_ok:
    mov dword [ebx + 0x30], 0           ; receive queue
    mov dword [ebx + 0x38], QSIZE
    mov dword [ebx + 0x80], rxq_desc
    mov dword [ebx + 0x84], 0
    mov dword [ebx + 0x90], rxq_avail
    mov dword [ebx + 0x94], 0
    mov dword [ebx + 0xa0], rxq_used
    mov dword [ebx + 0xa4], 0
    mov dword [ebx + 0x44], 1
    mov dword [ebx + 0x30], 1           ; transmit queue
    mov dword [ebx + 0x38], QSIZE
    mov dword [ebx + 0x80], txq_desc
    mov dword [ebx + 0x84], 0
    mov dword [ebx + 0x90], txq_avail
    mov dword [ebx + 0x94], 0
    mov dword [ebx + 0xa0], txq_used
    mov dword [ebx + 0xa4], 0
    mov dword [ebx + 0x44], 1
    mov dword [ebx + 0x70], 15          ; DRIVER_OK

    ; MAC address from the configuration space
    mov esi, msg_net_mac
    call puts
    xor ecx, ecx
.mac:
    mov al, [ebx + 0x100 + ecx]
    mov [net_mac + ecx], al
    call put_hex8
    inc ecx
    cmp ecx, 6
    je .mac_done
    mov al, ':'
    call putc
    jmp .mac
.mac_done:
    call newline

    call net_post_rx

    ; the frame: virtio_net_hdr_v1 (12 zero bytes), broadcast, our MAC, 0x88b5, payload
    mov edi, tx_buf
    mov ecx, 12
    xor al, al
    rep stosb
    mov ecx, 6
    mov al, 0xff
    rep stosb
    mov esi, net_mac
    mov ecx, 6
    rep movsb
    mov byte [edi], 0x88
    mov byte [edi + 1], 0xb5
    add edi, 2
    mov esi, str_frame
    mov ecx, str_frame_len
    rep movsb
    sub edi, tx_buf
    mov dword [txq_desc + 0], tx_buf
    mov dword [txq_desc + 4], 0
    mov [txq_desc + 8], edi
    mov word [txq_desc + 12], 0
    mov word [txq_avail + 4], 0
    mov word [txq_avail + 2], 1
    mov dword [ebx + 0x50], 1           ; notify the transmit queue
.tx_wait:
    cmp word [txq_used + 2], 1
    jne .tx_wait
    mov esi, msg_net_sent
    call puts

.rx_wait:
    mov ax, [rxq_used + 2]
    cmp ax, [rx_seen]
    je .rx_wait
    mov [rx_seen], ax
    cmp byte [rx_buf + 12 + 12], 0x88
    jne .rx_other
    cmp byte [rx_buf + 12 + 13], 0xb5
    jne .rx_other
    mov esi, msg_net_recv
    call puts
    mov esi, rx_buf + 12 + 14
    mov ecx, 16
.show:
    mov al, [esi]
    cmp al, 0x20
    jb .dot
    cmp al, 0x7e
    jbe .put
.dot:
    mov al, '.'
.put:
    call putc
    inc esi
    dec ecx
    jnz .show
    call newline
    ret
.rx_other:
    call net_post_rx
    jmp .rx_wait

; net_post_rx: offers rx_buf (descriptor 0) to the device as the next receive buffer.
net_post_rx:
    push ebx
    mov dword [rxq_desc + 0], rx_buf
    mov dword [rxq_desc + 4], 0
    mov dword [rxq_desc + 8], 12 + 1514
    mov word [rxq_desc + 12], 2         ; WRITE
    movzx eax, word [rxq_avail + 2]
    mov edx, eax
    and edx, QSIZE - 1
    mov word [rxq_avail + 4 + edx * 2], 0
    inc eax
    mov [rxq_avail + 2], ax
    mov ebx, [net_base]
    mov dword [ebx + 0x50], 0           ; notify the receive queue
    pop ebx
    ret

; put_hex8: AL as two hex digits.
put_hex8:
    push eax
    push ecx
    mov ecx, eax
    shr al, 4
    call .digit
    mov eax, ecx
    and al, 0xf
    call .digit
    pop ecx
    pop eax
    ret
.digit:
    and al, 0xf
    add al, '0'
    cmp al, '9'
    jbe .out
    add al, 'a' - '0' - 10
.out:
    jmp putc

; ---- virtio-mmio entropy ----
rng_test:
    mov ebx, MMIO_BASE
    mov ecx, 8
.probe:
    cmp dword [ebx], 0x74726976
    jne .probe_next
    cmp dword [ebx + 8], 4      ; entropy device
    je .found
.probe_next:
    add ebx, 0x1000
    dec ecx
    jnz .probe
    mov esi, msg_rng_none
    call puts
    ret
.found:
    mov dword [ebx + 0x70], 0
    mov dword [ebx + 0x70], 3
    mov dword [ebx + 0x24], 0
    mov dword [ebx + 0x20], 0
    mov dword [ebx + 0x24], 1
    mov dword [ebx + 0x20], 1           ; VIRTIO_F_VERSION_1
    mov dword [ebx + 0x70], 11
    mov dword [ebx + 0x30], 0
    mov dword [ebx + 0x38], QSIZE
    mov dword [ebx + 0x80], rngq_desc
    mov dword [ebx + 0x84], 0
    mov dword [ebx + 0x90], rngq_avail
    mov dword [ebx + 0x94], 0
    mov dword [ebx + 0xa0], rngq_used
    mov dword [ebx + 0xa4], 0
    mov dword [ebx + 0x44], 1
    mov dword [ebx + 0x70], 15
    mov dword [rngq_desc + 0], rng_buf
    mov dword [rngq_desc + 4], 0
    mov dword [rngq_desc + 8], 16
    mov word [rngq_desc + 12], 2        ; WRITE
    xor edi, edi                        ; requests done
.request:
    mov eax, edi
    and eax, QSIZE - 1
    mov word [rngq_avail + 4 + eax * 2], 0
    lea eax, [edi + 1]
    mov [rngq_avail + 2], ax
    mov dword [ebx + 0x50], 0
.wait:
    cmp [rngq_used + 2], ax
    jne .wait
    mov esi, msg_rng
    call puts
    xor ecx, ecx
.hex:
    mov al, [rng_buf + ecx]
    call put_hex8
    inc ecx
    cmp ecx, 16
    jne .hex
    call newline
    inc edi
    cmp edi, 2
    jne .request
    ret

; ---- virtio-mmio vsock ----
VS_BUF equ 512
vsock_test:
    mov ebx, MMIO_BASE
    mov ecx, 8
.probe:
    cmp dword [ebx], 0x74726976
    jne .probe_next
    cmp dword [ebx + 8], 19     ; socket device
    je .found
.probe_next:
    add ebx, 0x1000
    dec ecx
    jnz .probe
    mov esi, msg_vs_none
    call puts
    ret
.found:
    mov [vs_base], ebx
    mov dword [ebx + 0x70], 0
    mov dword [ebx + 0x70], 3
    mov dword [ebx + 0x24], 0
    mov dword [ebx + 0x20], 0
    mov dword [ebx + 0x24], 1
    mov dword [ebx + 0x20], 1           ; VIRTIO_F_VERSION_1
    mov dword [ebx + 0x70], 11
    mov eax, [ebx + 0x100]              ; guest_cid (low word)
    mov [vs_cid], eax
    ; queue 0: receive, 1: transmit, 2: events
    mov dword [ebx + 0x30], 0
    mov dword [ebx + 0x38], QSIZE
    mov dword [ebx + 0x80], vsq_rx_desc
    mov dword [ebx + 0x84], 0
    mov dword [ebx + 0x90], vsq_rx_avail
    mov dword [ebx + 0x94], 0
    mov dword [ebx + 0xa0], vsq_rx_used
    mov dword [ebx + 0xa4], 0
    mov dword [ebx + 0x44], 1
    mov dword [ebx + 0x30], 1
    mov dword [ebx + 0x38], QSIZE
    mov dword [ebx + 0x80], vsq_tx_desc
    mov dword [ebx + 0x84], 0
    mov dword [ebx + 0x90], vsq_tx_avail
    mov dword [ebx + 0x94], 0
    mov dword [ebx + 0xa0], vsq_tx_used
    mov dword [ebx + 0xa4], 0
    mov dword [ebx + 0x44], 1
    mov dword [ebx + 0x30], 2
    mov dword [ebx + 0x38], QSIZE
    mov dword [ebx + 0x80], vsq_ev_desc
    mov dword [ebx + 0x84], 0
    mov dword [ebx + 0x90], vsq_ev_avail
    mov dword [ebx + 0x94], 0
    mov dword [ebx + 0xa0], vsq_ev_used
    mov dword [ebx + 0xa4], 0
    mov dword [ebx + 0x44], 1
    mov dword [ebx + 0x70], 15
    ; receive buffers: descriptors 0..7, VS_BUF bytes each
    xor ecx, ecx
.rx_desc:
    mov eax, ecx
    imul eax, VS_BUF
    add eax, vs_rx_buf
    mov edx, ecx
    shl edx, 4
    mov [vsq_rx_desc + edx], eax
    mov dword [vsq_rx_desc + edx + 4], 0
    mov dword [vsq_rx_desc + edx + 8], VS_BUF
    mov word [vsq_rx_desc + edx + 12], 2     ; WRITE
    mov eax, ecx
    call vs_post_rx
    inc ecx
    cmp ecx, QSIZE
    jne .rx_desc

    mov eax, 1                          ; OP_REQUEST
    xor ecx, ecx
    call vs_send
.wait_response:
    call vs_recv
    cmp word [esi + 30], 2              ; OP_RESPONSE
    je .connected
    cmp word [esi + 30], 3              ; OP_RST
    jne .wait_response
    mov esi, msg_vs_refused
    call puts
    ret
.connected:
    mov esi, msg_vs_connected
    call puts
    mov esi, str_vs_hello
    mov edi, vs_tx_buf + 44
    mov ecx, str_vs_hello_len
    rep movsb
    mov eax, 5                          ; OP_RW
    mov ecx, str_vs_hello_len
    call vs_send
.wait_data:
    call vs_recv
    cmp word [esi + 30], 5
    jne .wait_data
    mov edx, esi
    mov esi, msg_vs_recv
    call puts
    mov ecx, [edx + 24]                 ; len
    cmp ecx, 64
    jbe .len_ok
    mov ecx, 64
.len_ok:
    lea esi, [edx + 44]
.show:
    test ecx, ecx
    jz .shown
    mov al, [esi]
    cmp al, 0x20
    jb .dot
    cmp al, 0x7e
    jbe .put
.dot:
    mov al, '.'
.put:
    call putc
    inc esi
    dec ecx
    jmp .show
.shown:
    call newline
    mov eax, 4                          ; OP_SHUTDOWN
    xor ecx, ecx
    mov dword [vs_flags], 3
    call vs_send
    mov esi, msg_vs_closed
    call puts
    ret

; vs_post_rx: EAX = receive descriptor to offer.
vs_post_rx:
    push edx
    push ebx
    movzx edx, word [vsq_rx_avail + 2]
    push edx
    and edx, QSIZE - 1
    mov [vsq_rx_avail + 4 + edx * 2], ax
    pop edx
    inc edx
    mov [vsq_rx_avail + 2], dx
    mov ebx, [vs_base]
    mov dword [ebx + 0x50], 0
    pop ebx
    pop edx
    ret

; vs_recv: waits for the next received packet; ESI = its buffer. The buffer is offered
; again right away (the caller reads it before the device can fill it: one packet at a
; time is in flight here).
vs_recv:
    push eax
    push edx
.wait:
    mov ax, [vsq_rx_used + 2]
    cmp ax, [vs_rx_seen]
    je .wait
    movzx edx, word [vs_rx_seen]
    and edx, QSIZE - 1
    mov eax, [vsq_rx_used + 4 + edx * 8]    ; descriptor id
    inc word [vs_rx_seen]
    mov esi, eax
    imul esi, VS_BUF
    add esi, vs_rx_buf
    ; keep a copy: the device may reuse the buffer once it is offered again
    push esi
    push edi
    push ecx
    mov edi, vs_pkt
    mov ecx, VS_BUF
    rep movsb
    pop ecx
    pop edi
    pop esi
    call vs_post_rx
    mov esi, vs_pkt
    pop edx
    pop eax
    ret

; vs_send: EAX = op, ECX = payload length (payload already at vs_tx_buf + 44).
vs_send:
    push ebx
    mov edx, [vs_cid]
    mov [vs_tx_buf + 0], edx
    mov dword [vs_tx_buf + 4], 0
    mov dword [vs_tx_buf + 8], 2        ; host
    mov dword [vs_tx_buf + 12], 0
    mov dword [vs_tx_buf + 16], 5000    ; src_port
    mov dword [vs_tx_buf + 20], 1234    ; dst_port
    mov [vs_tx_buf + 24], ecx           ; len
    mov word [vs_tx_buf + 28], 1        ; stream
    mov [vs_tx_buf + 30], ax            ; op
    mov edx, [vs_flags]
    mov [vs_tx_buf + 32], edx
    mov dword [vs_tx_buf + 36], 4096    ; buf_alloc
    mov dword [vs_tx_buf + 40], 0       ; fwd_cnt
    mov dword [vsq_tx_desc + 0], vs_tx_buf
    mov dword [vsq_tx_desc + 4], 0
    lea edx, [ecx + 44]
    mov [vsq_tx_desc + 8], edx
    mov word [vsq_tx_desc + 12], 0
    movzx edx, word [vsq_tx_avail + 2]
    push edx
    and edx, QSIZE - 1
    mov word [vsq_tx_avail + 4 + edx * 2], 0
    pop edx
    inc edx
    mov [vsq_tx_avail + 2], dx
    mov ebx, [vs_base]
    mov dword [ebx + 0x50], 1
.wait:
    cmp [vsq_tx_used + 2], dx
    jne .wait
    pop ebx
    ret

; ---- serial output ----
putc:
    push edx
    push eax
    mov dx, SERIAL + 5
.wait:
    in al, dx
    test al, 0x20
    jz .wait
    pop eax
    mov dx, SERIAL
    out dx, al
    pop edx
    ret

puts:
    push eax
.loop:
    mov al, [esi]
    test al, al
    jz .end
    call putc
    inc esi
    jmp .loop
.end:
    pop eax
    ret

newline:
    push eax
    mov al, 10
    call putc
    pop eax
    ret

; put_dec: EAX as unsigned decimal.
put_dec:
    push ebx
    push ecx
    push edx
    mov ebx, 10
    xor ecx, ecx
.div:
    xor edx, edx
    div ebx
    push edx
    inc ecx
    test eax, eax
    jnz .div
.out:
    pop eax
    add al, '0'
    call putc
    dec ecx
    jnz .out
    pop edx
    pop ecx
    pop ebx
    ret

msg_hello:      db "berth-guest: hello", 10, 0
msg_mem:        db "mem_mib=", 0
msg_cpus:       db "cpus=", 0
msg_done:       db "berth-guest: done", 10, 0
msg_tick:       db "tick ", 0
msg_blk_feat:   db "blk: features rejected", 10, 0
msg_blk_cap:    db "blk: capacity=", 0
msg_blk_read:   db "blk: sector0=", 0
msg_blk_write:  db "blk: write status=", 0
msg_blk_flush:  db "blk: flush status=", 0
str_tick:       db "tick", 0
str_reset:      db "reset", 0
str_crash:      db "crash", 0
str_net:        db "net", 0
str_rng:        db "rng", 0
str_vsock:      db "vsock", 0
str_vs_hello:   db "hello from the guest"
str_vs_hello_len equ $ - str_vs_hello
msg_vs_none:    db "vsock: no device", 10, 0
msg_vs_refused: db "vsock: refused", 10, 0
msg_vs_connected: db "vsock: connected", 10, 0
msg_vs_recv:    db "vsock: received=", 0
msg_vs_closed:  db "vsock: closed", 10, 0
msg_rng_none:   db "rng: no device", 10, 0
msg_rng:        db "rng: ", 0
str_frame:      db "berth-guest frame"
str_frame_len   equ $ - str_frame
msg_net_none:   db "net: no device", 10, 0
msg_net_feat:   db "net: features rejected", 10, 0
msg_net_mac:    db "net: mac=", 0
msg_net_sent:   db "net: sent", 10, 0
msg_net_recv:   db "net: received=", 0
str_wrote:      db "berth-guest wrote sector 1", 0

section .bss
alignb 4096
vq_desc:    resb 16 * QSIZE
alignb 4096
vq_avail:   resb 4 + 2 * QSIZE + 2
alignb 4096
vq_used:    resb 4 + 8 * QSIZE + 2
alignb 16
blk_hdr:    resb 16
blk_data:   resb 512
blk_status: resb 4
blk_base:   resd 1
start_info: resd 1
ticks:      resd 1
alignb 4096
rxq_desc:   resb 16 * QSIZE
alignb 4096
rxq_avail:  resb 4 + 2 * QSIZE + 2
alignb 4096
rxq_used:   resb 4 + 8 * QSIZE + 2
alignb 4096
txq_desc:   resb 16 * QSIZE
alignb 4096
txq_avail:  resb 4 + 2 * QSIZE + 2
alignb 4096
txq_used:   resb 4 + 8 * QSIZE + 2
alignb 4096
rngq_desc:  resb 16 * QSIZE
alignb 4096
rngq_avail: resb 4 + 2 * QSIZE + 2
alignb 4096
rngq_used:  resb 4 + 8 * QSIZE + 2
alignb 16
rng_buf:    resb 16
alignb 4096
vsq_rx_desc:  resb 16 * QSIZE
alignb 4096
vsq_rx_avail: resb 4 + 2 * QSIZE + 2
alignb 4096
vsq_rx_used:  resb 4 + 8 * QSIZE + 2
alignb 4096
vsq_tx_desc:  resb 16 * QSIZE
alignb 4096
vsq_tx_avail: resb 4 + 2 * QSIZE + 2
alignb 4096
vsq_tx_used:  resb 4 + 8 * QSIZE + 2
alignb 4096
vsq_ev_desc:  resb 16 * QSIZE
alignb 4096
vsq_ev_avail: resb 4 + 2 * QSIZE + 2
alignb 4096
vsq_ev_used:  resb 4 + 8 * QSIZE + 2
alignb 16
vs_rx_buf:  resb VS_BUF * QSIZE
vs_pkt:     resb VS_BUF
vs_tx_buf:  resb 44 + 256
vs_base:    resd 1
vs_cid:     resd 1
vs_flags:   resd 1
vs_rx_seen: resw 2
alignb 16
rx_buf:     resb 12 + 1514
alignb 16
tx_buf:     resb 12 + 1514
net_mac:    resb 8
net_base:   resd 1
rx_seen:    resw 2
alignb 16
stack:      resb 4096
stack_top:
