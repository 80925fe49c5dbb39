"""Pure-NumPy twins of the compiled kernels: slow, plain, and the specification they are tested against.

Preprocessing (twin of ``ext/preprocess.pyx``), in this order:
  1. split the frame into planes: R, G, B (or gray) for packed formats; Y, U, V for 4:2:0, chroma
     at half resolution with its samples centred between luma samples;
  2. resample every plane onto the content rectangle of the output with the source rectangle of the
     `Placement` (see `edgert.resample_maps` for the nearest / bilinear / area rules and the
     "half" / "corner" pixel-centre conventions), computed in
     float64 as dense weight matrices; round half up to 8 bits;
  3. convert colour with the Q14 integer coefficients of `edgert.colour` (floor shift, clamp); a
     gray model fed luma gets `edgert.colour.luma_levels` (limited-range Y expanded to 0..255);
  4. map every 8-bit value through the per-channel table of `edgert.preprocess.value_table`;
  5. fill the rest of the output with the padding value mapped the same way.
The kernel matches this exactly for nearest sampling (and wherever no resampling happens) and to
within one unit of the 8-bit value for bilinear and area, from its fixed-point weights.
"""
from __future__ import annotations

import numpy as np

from edgert import colour
from edgert.preprocess import Preprocessor, value_table
from edgert.tracking import kalman
from edgert.tracking.association import iou_matrix


def _sample_points(src_start: float, src_len: float, n: int, scale: float, pixel_centers: str) -> np.ndarray:
    """Where output pixel i samples the source, in continuous plane coordinates (pixel j covers [j, j+1)).

    "half": the centre of output pixel i, ``src_start + (i + 0.5) * step``; "corner": source index
    ``src_start + i * step`` (the plain affine map on indices), whose continuous coordinate is + 0.5.
    """
    step = src_len / n
    i = np.arange(n, dtype=np.float64)
    point = src_start + (i + 0.5) * step if pixel_centers == "half" else src_start + i * step + 0.5
    return point * scale


def _weights(interpolation: str, src_start: float, src_len: float, n: int, size: int, scale: float,
             pixel_centers: str = "half") -> np.ndarray:
    """Dense ``(n, size)`` resampling matrix of one axis; rows sum to 1."""
    m = np.zeros((n, size))
    rows = np.arange(n)
    if interpolation == "nearest":
        idx = np.clip(np.floor(_sample_points(src_start, src_len, n, scale, pixel_centers)), 0, size - 1).astype(int)
        m[rows, idx] = 1.0
    elif interpolation == "bilinear":
        p = _sample_points(src_start, src_len, n, scale, pixel_centers) - 0.5
        i0 = np.floor(p)
        f = p - i0
        f[(i0 < 0) | (i0 >= size - 1)] = 0.0
        i0 = np.clip(i0, 0, size - 1).astype(int)
        i1 = np.minimum(i0 + 1, size - 1)
        np.add.at(m, (rows, i0), 1.0 - f)
        np.add.at(m, (rows, i1), f)
    else:  # area: the share of each source pixel inside the output pixel's footprint
        c = _sample_points(src_start, src_len, n, scale, pixel_centers) / scale  # footprint: c +- step / 2
        edges = (np.append(c - src_len / n / 2, c[-1] + src_len / n / 2)) * scale
        lo, hi = np.clip(edges[:-1], 0, size), np.clip(edges[1:], 0, size)
        pix = np.arange(size)
        cover = np.clip(np.minimum(hi[:, None], pix + 1) - np.maximum(lo[:, None], pix), 0, None)
        empty = cover.sum(1) == 0  # a footprint thinner than float resolution at the border
        cover[empty, np.minimum(np.floor(lo[empty]), size - 1).astype(int)] = 1.0
        m = cover / cover.sum(1, keepdims=True)
    return m


def _resample(plane: np.ndarray, pre: Preprocessor, scale: float) -> np.ndarray:
    sx, sy, sw, sh = pre.placement.src_rect
    _, _, n_x, n_y = pre.placement.dst_rect
    wy = _weights(pre.interpolation, sy, sh, n_y, plane.shape[0], scale, pre.pixel_centers)
    wx = _weights(pre.interpolation, sx, sw, n_x, plane.shape[1], scale, pre.pixel_centers)
    return np.floor(wy @ plane.astype(np.float64) @ wx.T + 0.5).astype(np.int64)


def _planes(frame: np.ndarray, pre: Preprocessor) -> dict:
    fmt, (w, h) = pre.format, pre.src_size
    if fmt.yuv420 is None:
        px = frame.reshape(h, w, fmt.bytes_per_pixel)
        r, g, b = fmt.rgb_offsets
        return {"R": px[:, :, r], "G": px[:, :, g], "B": px[:, :, b]}
    y = frame[:h, :w]
    if fmt.yuv420 == "I420":
        flat = np.ascontiguousarray(frame).reshape(-1)
        stride = frame.shape[1]
        cp = stride // 2
        u0 = h * stride
        v0 = u0 + (h // 2) * cp
        u = flat[u0:u0 + (h // 2) * cp].reshape(h // 2, cp)[:, : w // 2]
        v = flat[v0:v0 + (h // 2) * cp].reshape(h // 2, cp)[:, : w // 2]
    else:
        uv = frame[h:, :w].reshape(h // 2, w // 2, 2)
        u, v = (uv[:, :, 0], uv[:, :, 1]) if fmt.yuv420 == "NV12" else (uv[:, :, 1], uv[:, :, 0])
    return {"Y": y, "U": u, "V": v}


def yuv_to_rgb(y, u, v, yuv_range: str, matrix: str = "bt601"):
    """Q14 integer conversion of 8-bit Y, U, V arrays to clamped 8-bit R, G, B."""
    cy, crv, cgu, cgv, cbu, off = colour.yuv_coefficients(yuv_range, matrix)
    yy = (np.asarray(y, np.int64) - off) * cy + (1 << (colour.Q - 1))
    uu, vv = np.asarray(u, np.int64) - 128, np.asarray(v, np.int64) - 128
    rgb = [(yy + crv * vv) >> colour.Q, (yy - cgu * uu - cgv * vv) >> colour.Q, (yy + cbu * uu) >> colour.Q]
    return [np.clip(c, 0, 255) for c in rgb]


def rgb_to_gray(r, g, b):
    """Q14 integer BT.601 luma of 8-bit R, G, B."""
    wr, wg, wb = colour.GRAY_WEIGHTS
    return (np.asarray(r, np.int64) * wr + np.asarray(g, np.int64) * wg + np.asarray(b, np.int64) * wb
            + (1 << (colour.Q - 1))) >> colour.Q


def preprocess(frame: np.ndarray, pre: Preprocessor) -> np.ndarray:
    """What `pre(frame)` must return, computed the slow and obvious way."""
    planes = _planes(frame, pre)
    c = pre._channels
    if "Y" in planes:
        y = _resample(planes["Y"], pre, 1.0)
        if c == 1:
            chans = [colour.luma_levels(pre.yuv_range)[y]]
        else:
            u, v = _resample(planes["U"], pre, 0.5), _resample(planes["V"], pre, 0.5)
            chans = yuv_to_rgb(y, u, v, pre.yuv_range, pre.yuv_matrix)
    elif pre.format.is_gray:
        chans = [_resample(planes["R"], pre, 1.0)] * c
    else:
        r, g, b = (_resample(planes[k], pre, 1.0) for k in "RGB")
        chans = [rgb_to_gray(r, g, b)] if c == 1 else [r, g, b]
    if c == 3 and pre.channel_order == "BGR":
        chans = chans[::-1]
    w, h = pre._size
    dx, dy, n_x, n_y = pre.placement.dst_rect
    content = np.stack([np.asarray(ch).reshape(n_y, n_x) for ch in chans])  # (C, n_y, n_x)
    pad = np.asarray(pre._pad_value, np.float64)
    canvas = np.empty((c, h, w), pre.spec.dtype)
    canvas[:] = value_table(pre.spec, c, pre._nhwc, pre.mean, pre.std, pad[:, None])[:, :, None]
    mapped = value_table(pre.spec, c, pre._nhwc, pre.mean, pre.std, content.reshape(c, -1).astype(np.float64))
    canvas[:, dy:dy + n_y, dx:dx + n_x] = mapped.reshape(c, n_y, n_x)
    out = canvas.transpose(1, 2, 0) if pre._nhwc else canvas
    return out.reshape(pre.spec.shape)


# ---- decoding twins (of ext/postprocess.pyx and edgert/postprocess) ------------------------------
#
# Conventions shared with the kernels: scores are float32; candidates rank by score, highest first,
# the lower candidate index first among equal scores; a box is suppressed when its IoU with a kept
# box (of its class, when class-aware) is greater than the threshold; IoU uses areas without +1.


def dequantize(q: np.ndarray, quant) -> np.ndarray:
    """float32 ``(q - zero_point) * scale`` with the scale along ``quant.axis`` when per channel."""
    q = np.asarray(q)
    scale, zp = quant.scale, quant.zero_point
    if quant.per_channel:
        shape = [1] * q.ndim
        shape[quant.axis] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return ((q.astype(np.int32) - zp).astype(np.float32) * scale).astype(np.float32)


def top_k(x: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest values (NaN never), largest first, lower index first on ties."""
    x = np.asarray(x).reshape(-1).astype(np.float64)
    idx = np.flatnonzero(~np.isnan(x))
    order = idx[np.lexsort((idx, -x[idx]))]
    return order[:k]


def iou(a, b) -> float:
    """IoU of two xyxy boxes (float32 arithmetic, as the kernel)."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return np.float32(0.0)
    inter = np.float32(iw * ih)
    union = np.float32((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
    return np.float32(inter / union) if union > 0 else np.float32(0.0)


def nms(boxes, scores, classes=None, iou_threshold=0.45, max_det=300, class_aware=True, weighted=False,
        keypoints=None):
    """Greedy (or weighted) NMS, written out plainly. Returns (boxes, scores, classes, keypoints).

    IoU and threshold compare in float32; a weighted cluster of zero scores averages its boxes.
    """
    iou_threshold = np.float32(iou_threshold)
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    scores = np.asarray(scores, np.float32).reshape(-1)
    n = scores.size
    classes = np.zeros(n, np.int32) if classes is None else np.asarray(classes, np.int32)
    order = sorted(range(n), key=lambda i: (-float(scores[i]), i))
    kept, groups = [], []
    absorbed = set()
    for i in order:
        if i in absorbed:
            continue
        if weighted:
            if len(kept) >= max_det:
                break
            group = [i] + [j for j in order if j not in absorbed and j != i and
                           (not class_aware or classes[j] == classes[i]) and iou(boxes[i], boxes[j]) > iou_threshold]
            absorbed.update(group)
            kept.append(i)
            groups.append(group)
            continue
        if len(kept) >= max_det:
            break
        if all((class_aware and classes[j] != classes[i]) or iou(boxes[i], boxes[j]) <= iou_threshold for j in kept):
            kept.append(i)
    kp = None
    if keypoints is not None:
        kp = np.asarray(keypoints, np.float32)
        kp = kp if kp.ndim == 3 else kp.reshape(n, kp.shape[1] // 2, 2)
    if not weighted:
        return boxes[kept], scores[kept], classes[kept], (None if kp is None else kp[kept])
    out_b, out_k = [], []
    for group in groups:
        w = scores[group].astype(np.float64)
        if w.sum() <= 0:
            w = np.ones_like(w)
        out_b.append((boxes[group] * w[:, None]).sum(0) / w.sum())
        if kp is not None:
            out_k.append((kp[group] * w[:, None, None]).sum(0) / w.sum())
    out_b = np.array(out_b, np.float32).reshape(-1, 4)
    out_k = None if kp is None else np.array(out_k, np.float32).reshape(len(groups), kp.shape[1], 2)
    return out_b, scores[kept], classes[kept], out_k


def sigmoid(x):
    """float32 logistic function."""
    x = np.asarray(x, np.float64)
    return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


def decode_yolo_single(raw: np.ndarray, spec, layout: str, conf: float, iou_threshold: float, input_size,
                       normalized: bool, activation: str = "none", max_det: int = 300, class_aware: bool = True):
    """YOLO single-tensor decode the slow way: dequantize everything, score everything, NMS."""
    x = dequantize(raw, spec.quant) if spec.quant is not None and raw.dtype != np.float32 else raw.astype(np.float32)
    x = x[0]
    if layout == "v8":
        x = x.T
    coords = x[:, :4]
    if layout == "v5":
        cls = x[:, 5:]
        arg = cls.argmax(1)
        scores = (x[:, 4] * cls[np.arange(len(cls)), arg]).astype(np.float32)
    else:
        cls = x[:, 4:]
        arg = cls.argmax(1)
        best = cls[np.arange(len(cls)), arg]
        scores = sigmoid(best) if activation == "sigmoid" else best.astype(np.float32)
    keep = np.flatnonzero(scores >= np.float32(conf))
    c = coords[keep]
    boxes = np.concatenate([c[:, :2] - c[:, 2:] * np.float32(0.5), c[:, :2] + c[:, 2:] * np.float32(0.5)], 1)
    if normalized:
        boxes = boxes * np.array(list(input_size) * 2, np.float32)
    return nms(boxes, scores[keep], arg[keep].astype(np.int32), iou_threshold, max_det, class_aware)


def decode_yolo_dfl(arrays, specs, nchw: bool, conf: float, iou_threshold: float, input_size, bins: int = 16,
                    activation: str = "none", max_det: int = 300, class_aware: bool = True):
    """Split DFL heads the slow way: every cell of every stride scored and decoded, then NMS.

    Heads are paired by feature-map size: the tensor with 4 * bins channels holds the box bins
    (left, top, right, bottom; softmax over bins, expectation = distance in strides), the other
    the class scores; one-channel tensors are ignored.
    """
    real = [dequantize(a, s.quant) if a.dtype != np.float32 else a.astype(np.float32) for a, s in zip(arrays, specs)]
    heads = {}
    for r in real:
        chw = r[0] if nchw else r[0].transpose(2, 0, 1)
        head = heads.setdefault(chw.shape[1:], {})
        if chw.shape[0] == 4 * bins:
            head["box"] = chw
        elif chw.shape[0] > head.get("cls", np.zeros((0,))).shape[0]:  # a 1-channel score sum loses to classes
            head["cls"] = chw
    all_boxes, all_scores, all_classes = [], [], []
    for (h, w), head in sorted(heads.items(), key=lambda kv: -kv[0][0] * kv[0][1]):
        cls = head["cls"].reshape(head["cls"].shape[0], -1).T  # (cells, C)
        arg = cls.argmax(1)
        best = cls[np.arange(len(cls)), arg]
        scores = sigmoid(best) if activation == "sigmoid" else best.astype(np.float32)
        keep = np.flatnonzero(scores >= np.float32(conf))
        logits = head["box"].reshape(4, bins, -1)[:, :, keep].transpose(2, 0, 1).astype(np.float64)
        p = np.exp(logits - logits.max(2, keepdims=True))
        dist = (p * np.arange(bins)).sum(2) / p.sum(2)
        sx, sy = input_size[0] / w, input_size[1] / h
        cx, cy = keep % w + 0.5, keep // w + 0.5
        boxes = np.stack([(cx - dist[:, 0]) * sx, (cy - dist[:, 1]) * sy, (cx + dist[:, 2]) * sx,
                          (cy + dist[:, 3]) * sy], 1)
        all_boxes.append(boxes)
        all_scores.append(scores[keep])
        all_classes.append(arg[keep])
    boxes = np.concatenate(all_boxes) if all_boxes else np.zeros((0, 4))
    scores = np.concatenate(all_scores) if all_scores else np.zeros(0, np.float32)
    classes = np.concatenate(all_classes).astype(np.int32) if all_classes else np.zeros(0, np.int32)
    return nms(boxes, scores, classes, iou_threshold, max_det, class_aware)


def decode_ssd_anchors(regressors, scores_raw, anchors, reg_spec, score_spec, conf: float, iou_threshold: float,
                       input_size, scale, reverse: bool = True, exp_box: bool = False, use_sigmoid: bool = True,
                       clip: float = 100.0, weighted: bool = False, max_det: int = 100, class_aware: bool = False):
    """MediaPipe-style SSD decode the slow way: every anchor decoded and scored, then (weighted) NMS."""
    reg = dequantize(regressors, reg_spec.quant)[0] if regressors.dtype != np.float32 else regressors[0]
    raw = dequantize(scores_raw, score_spec.quant)[0] if scores_raw.dtype != np.float32 else scores_raw[0]
    arg = raw.argmax(1)
    best = raw[np.arange(len(raw)), arg].astype(np.float32)
    if use_sigmoid:
        best = sigmoid(np.clip(best, -clip, clip) if clip > 0 else best)
    keep = np.flatnonzero(best >= np.float32(conf))
    # float32 throughout, in the decoder's order: boxes that merely touch must touch in both.
    r, a = reg[keep].astype(np.float32), np.asarray(anchors, np.float32)[keep]
    scale = tuple(np.float32(v) for v in scale)
    xs, ys, ws, hs = scale
    x, y, w, h = (r[:, 0], r[:, 1], r[:, 2], r[:, 3]) if reverse else (r[:, 1], r[:, 0], r[:, 3], r[:, 2])
    cx, cy = x / xs * a[:, 2] + a[:, 0], y / ys * a[:, 3] + a[:, 1]
    bw, bh = (np.exp(w / ws) * a[:, 2], np.exp(h / hs) * a[:, 3]) if exp_box else (w / ws * a[:, 2], h / hs * a[:, 3])
    iw, ih = np.float32(input_size[0]), np.float32(input_size[1])
    boxes = np.stack([(cx - bw / 2) * iw, (cy - bh / 2) * ih, (cx + bw / 2) * iw, (cy + bh / 2) * ih], 1)
    kp = r[:, 4:].reshape(len(keep), (reg.shape[-1] - 4) // 2, 2)
    if not reverse:
        kp = kp[:, :, ::-1]
    kpts = np.stack([(kp[:, :, 0] / xs * a[:, 2:3] + a[:, 0:1]) * iw, (kp[:, :, 1] / ys * a[:, 3:4] + a[:, 1:2]) * ih],
                    2).reshape(len(keep), (reg.shape[-1] - 4) // 2, 2)
    return nms(boxes, best[keep], arg[keep].astype(np.int32), iou_threshold, max_det, class_aware, weighted,
               kpts if kpts.shape[1] else None)


# -- tracking (twin of ext/tracking.pyx): the box Kalman filter on (T, 8) means, (T, 12) covariances ---------

def _noise(h2, scale, aspect):
    """Per-coordinate variance: height**2 * scale for x, y and height; `aspect` for the aspect."""
    v = np.repeat((h2 * scale)[:, None], 4, 1)
    v[:, 2] = aspect
    return v


def kalman_initiate(boxes, rows):
    z = kalman.xyxy_to_xyah(np.asarray(boxes, np.float64)[rows])
    h2 = z[:, 3] ** 2
    means = np.c_[z, np.zeros((len(z), 4))]
    covs = np.c_[_noise(h2, (2 * kalman.POSITION_STD) ** 2, 1e-2**2), np.zeros((len(z), 4)),
                 _noise(h2, (10 * kalman.VELOCITY_STD) ** 2, 1e-5**2)]
    return means, covs


def kalman_predict(means, covs):
    """x = F x; P = F P F' + Q, on each coordinate's 2x2 block (position, velocity)."""
    h2 = means[:, 3] ** 2
    p, c, v = covs[:, :4], covs[:, 4:8], covs[:, 8:]
    cross = c + v
    out = np.c_[p + c + cross + _noise(h2, kalman.POSITION_STD**2, 1e-2**2), cross,
                v + _noise(h2, kalman.VELOCITY_STD**2, 1e-5**2)]
    return np.c_[means[:, :4] + means[:, 4:], means[:, 4:]], out


def kalman_update(means, covs, slots, boxes, dets):
    """Rows `slots` corrected by ``boxes[dets]``: S = P + R, K = P H' / S, x += K y, P -= K S K'."""
    means, covs = means.copy(), covs.copy()
    m, cv = means[slots], covs[slots]
    z = kalman.xyxy_to_xyah(np.asarray(boxes, np.float64)[dets])
    p, c, v = cv[:, :4], cv[:, 4:8], cv[:, 8:]
    s = p + _noise(m[:, 3] ** 2, kalman.POSITION_STD**2, 1e-1**2)
    gain_pos, gain_vel = p / s, c / s
    y = z - m[:, :4]
    means[slots] = np.c_[m[:, :4] + gain_pos * y, m[:, 4:] + gain_vel * y]
    covs[slots] = np.c_[p * (1 - gain_pos), c * (1 - gain_pos), v - gain_vel * c]
    return means, covs


def track_similarity(means, boxes, track_groups, det_groups):
    """IoU of each track's predicted box with each detection; 0 across class groups."""
    out = iou_matrix(kalman.xyah_to_xyxy(means), boxes)
    out[np.asarray(track_groups)[:, None] != np.asarray(det_groups)[None, :]] = 0.0
    return out
