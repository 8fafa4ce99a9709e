; berth test guest: virtio-vsock client (see guest.asm).
section .text
; ---- virtio-mmio vsock ----
VS_BUF equ 512
; vsock_test: connects to host port 1234, sends a greeting, prints the answer.
vsock_test:
    call vs_init
    test eax, eax
    jz .none
    mov dword [vs_peer_port], 1234
    jmp vs_client
.none:
    ret

; vsock_listen: waits for a host connection to port 5000 and echoes what it receives.
vsock_listen:
    call vs_init
    test eax, eax
    jz .none
    mov esi, msg_vs_listening
    call puts
.wait_request:
    call vs_recv
    cmp word [esi + 30], 1              ; OP_REQUEST
    jne .wait_request
    cmp dword [esi + 20], 5000          ; to our port
    jne .wait_request
    mov eax, [esi + 16]                 ; the host's port
    mov [vs_peer_port], eax
    mov eax, 2                          ; OP_RESPONSE
    xor ecx, ecx
    call vs_send
    mov esi, msg_vs_accepted
    call puts
.wait_data:
    call vs_recv
    cmp word [esi + 30], 5              ; OP_RW
    jne .wait_data
    mov ecx, [esi + 24]
    cmp ecx, 200
    jbe .len_ok
    mov ecx, 200
.len_ok:
    push ecx
    add esi, 44
    mov edi, vs_tx_buf + 44
    rep movsb
    pop ecx
    mov eax, 5
    call vs_send
    mov esi, msg_vs_echoed
    call puts
.none:
    ret

; vs_init: finds and starts the first vsock device; EAX = 0 if there is none.
vs_init:
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
    xor eax, eax
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
    mov eax, 1
    ret

vs_client:
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
    mov edx, [vs_peer_port]
    mov [vs_tx_buf + 20], edx           ; dst_port
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

str_vs_hello:   db "hello from the guest"
str_vs_hello_len equ $ - str_vs_hello
msg_vs_none:    db "vsock: no device", 10, 0
msg_vs_refused: db "vsock: refused", 10, 0
msg_vs_connected: db "vsock: connected", 10, 0
msg_vs_recv:    db "vsock: received=", 0
msg_vs_closed:  db "vsock: closed", 10, 0
msg_vs_listening: db "vsock: listening", 10, 0
msg_vs_accepted: db "vsock: accepted", 10, 0
msg_vs_echoed:  db "vsock: echoed", 10, 0

section .bss
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
vs_peer_port: resd 1
vs_rx_seen: resw 2

