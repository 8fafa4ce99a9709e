; berth test guest: virtio-net driver (see guest.asm).
section .text
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
.send:
    ; (Re)send the frame: a peer that was not listening yet gets it again.
    movzx eax, word [txq_avail + 2]
    mov edx, eax
    and edx, QSIZE - 1
    mov word [txq_avail + 4 + edx * 2], 0
    inc eax
    mov [txq_avail + 2], ax
    mov dword [ebx + 0x50], 1           ; notify the transmit queue
.tx_wait:
    cmp [txq_used + 2], ax
    jne .tx_wait
    cmp ax, 1
    jne .rx_wait
    mov esi, msg_net_sent
    call puts

.rx_wait:
    mov ecx, 300000                     ; then send again
.rx_poll:
    mov ax, [rxq_used + 2]
    cmp ax, [rx_seen]
    jne .rx_got
    dec ecx
    jnz .rx_poll
    jmp .send
.rx_got:
    mov [rx_seen], ax
    cmp byte [rx_buf + 12 + 12], 0x88
    jne .rx_other
    cmp byte [rx_buf + 12 + 13], 0xb5
    jne .rx_other
    ; The header the device wrote: no flags, no GSO, num_buffers 1 (no offloads offered).
    cmp word [rx_buf + 0], 0
    jne .hdr_checked
    cmp word [rx_buf + 10], 1
    jne .hdr_checked
    mov esi, msg_net_hdr
    call puts
.hdr_checked:
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

str_frame:      db "berth-guest frame"
str_frame_len   equ $ - str_frame
msg_net_none:   db "net: no device", 10, 0
msg_net_feat:   db "net: features rejected", 10, 0
msg_net_mac:    db "net: mac=", 0
msg_net_sent:   db "net: sent", 10, 0
msg_net_recv:   db "net: received=", 0
msg_net_hdr:    db "net: rx header ok", 10, 0

section .bss
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
alignb 16
rx_buf:     resb 12 + 1514
alignb 16
tx_buf:     resb 12 + 1514
net_mac:    resb 8
net_base:   resd 1
rx_seen:    resw 2
