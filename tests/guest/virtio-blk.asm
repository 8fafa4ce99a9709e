; berth test guest: virtio-blk driver (see guest.asm).
section .text
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
    call blk_show

    ; read sector 1 as it was
    mov eax, 0
    mov edx, 1
    call blk_request
    mov esi, msg_blk_was
    call blk_show

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

    ; read sector 1 back
    mov edi, blk_data
    mov ecx, 512
    xor al, al
    rep stosb
    mov eax, 0
    mov edx, 1
    call blk_request
    mov esi, msg_blk_back
    call blk_show
    ret

; blk_show: prints the string at ESI, then the first 32 bytes of blk_data ('.' for
; unprintable bytes) and a newline.
blk_show:
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

msg_blk_feat:   db "blk: features rejected", 10, 0
msg_blk_cap:    db "blk: capacity=", 0
msg_blk_read:   db "blk: sector0=", 0
msg_blk_write:  db "blk: write status=", 0
msg_blk_flush:  db "blk: flush status=", 0
msg_blk_was:    db "blk: sector1 was=", 0
msg_blk_back:   db "blk: sector1=", 0
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
