"""The shard format's owner: record bytes, member names, the key rule, and reading a raw sample back."""

import numpy as np
import pytest

from pipeline.shard_format import (
    SampleError,
    ShardRecord,
    Supervision,
    box_embeddings_bytes,
    check_key,
    checksum_problem,
    crc32_hex,
    parse_sample,
    sample_members,
    sanitize_key,
)

README_RECORD = (
    b'{"box_embedding_encoder": null, "boxes": null, "classes_present": [0, 3, 12], "dataset": "ade20k-150", '
    b'"height": 512, "ignore_index": 255, "num_classes": 150, "sources": {"annotation": '
    b'"annotations/training/ADE_train_00000001.png", "image": "images/training/ADE_train_00000001.jpg"}, '
    b'"split": "training", "supervision": "dense", "width": 683}'
)


def _record(**changes) -> ShardRecord:
    sources = {"image": "images/training/ADE_train_00000001.jpg",
               "annotation": "annotations/training/ADE_train_00000001.png"}
    return ShardRecord(**{
        "dataset": "ade20k-150", "split": "training", "supervision": "dense", "width": 683, "height": 512,
        "num_classes": 150, "ignore_index": 255, "classes_present": [0, 3, 12], "boxes": None,
        "box_embedding_encoder": None, "sources": sources, **changes,
    })


def _raw(members):
    key = members[0][0].split(".", 1)[0]
    return {"__key__": key, **{name.split(".", 1)[1]: data for name, data in members}}


def test_record_bytes_are_the_readme_example_with_sorted_keys():
    assert _record().to_json() == README_RECORD


def test_members_in_readme_order_and_read_back():
    boxes = [[0, 0, 4, 4, 1], [2, 2, 8, 6, 0]]
    record = _record(supervision="box", boxes=boxes, box_embedding_encoder="open_clip:x:random", classes_present=[0, 1])
    vectors = np.arange(6, dtype=np.float32).reshape(2, 3)
    members = sample_members("img_1", "jpg", b"JPEG", record, None, box_embeddings_bytes(vectors))
    assert [name for name, _ in members] == ["img_1.jpg", "img_1.json", "img_1.boxemb.npy"]
    sample = parse_sample(_raw(members))
    sums = {"jpg": crc32_hex(b"JPEG"), "boxemb.npy": crc32_hex(box_embeddings_bytes(vectors))}
    assert sample.record == record.model_copy(update={"crc32": sums})
    assert sample.record.supervision is Supervision.box
    assert (sample.key, sample.image, sample.image_ext, sample.label_png) == ("img_1", b"JPEG", "jpg", None)
    assert sample.box_embeddings.dtype == np.float32 and np.array_equal(sample.box_embeddings, vectors)


def test_bad_raw_samples_name_the_key_and_the_reason():
    members = sample_members("k", "png", b"PNG", _record(), b"LABEL")
    raw = _raw(members)
    assert parse_sample(raw).label_png == b"LABEL"
    with pytest.raises(SampleError, match="sample k: dense supervision but no .label.png"):
        parse_sample({k: v for k, v in raw.items() if k != "label.png"})
    with pytest.raises(SampleError, match=r"sample k: no image member \(.jpg or .png\)"):
        parse_sample({k: v for k, v in raw.items() if k != "png"})
    with pytest.raises(SampleError, match="sample k: .json record: width: "):
        parse_sample({**raw, "json": raw["json"].replace(b'"width": 683', b'"width": "wide"')})
    with pytest.raises(SampleError, match="sample k: .json record: split: Field required"):
        parse_sample({**raw, "json": raw["json"].replace(b'"split": "training", ', b"")})
    with pytest.raises(SampleError, match="sample k: .json record: supervision: "):
        parse_sample({**raw, "json": raw["json"].replace(b'"dense"', b'"pixels"')})
    box = sample_members("b", "png", b"PNG", _record(supervision="box", boxes=[[0, 0, 1, 1, 0]]), None,
                         box_embeddings_bytes(np.zeros((2, 4))))
    with pytest.raises(SampleError, match=r"sample b: boxemb.npy has shape \(2, 4\), expected \[1, D\]"):
        parse_sample(_raw(box))


def test_key_rule_and_supervision_codes():
    assert check_key("ADE_train-0001") == "ADE_train-0001"
    for bad in ("a.b", "a/b", "", "ä"):
        with pytest.raises(ValueError, match="may hold only letters, digits, '-' and '_'"):
            check_key(bad)
    with pytest.raises(ValueError, match="may hold only"):
        sample_members("a.b", "png", b"", _record())
    assert sanitize_key("frankfurt_000000.left 8bit") == "frankfurt_000000_left_8bit"
    assert [s.code for s in (Supervision.dense, Supervision.coarse, Supervision.box)] == [0, 1, 2]


def test_record_lists_each_members_crc32_and_a_flipped_byte_is_named():
    members = sample_members("k", "jpg", b"\xff\xd8JPEG-SCAN-DATA", _record(), b"LABEL")
    raw = _raw(members)
    record = parse_sample(raw).record
    assert record.crc32 == {"jpg": crc32_hex(b"\xff\xd8JPEG-SCAN-DATA"), "label.png": crc32_hex(b"LABEL")}
    assert checksum_problem(raw) is None
    flipped = bytearray(raw["jpg"])
    flipped[5] ^= 0x01
    assert checksum_problem({**raw, "jpg": bytes(flipped)}) == (
        f"member .jpg is damaged: CRC32 {crc32_hex(bytes(flipped))}, the record says {record.crc32['jpg']}")
    assert checksum_problem({k: v for k, v in raw.items() if k != "label.png"}) == (
        "member .label.png is listed in the record's crc32 but missing")


def test_records_without_checksums_keep_their_bytes_and_still_read():
    assert b"crc32" not in _record().to_json()  # the README example: written before the field existed
    old = {"__key__": "k", "png": b"PNG", "label.png": b"LABEL", "json": _record().to_json()}
    assert checksum_problem(old) is None and parse_sample(old).record.crc32 is None


def test_names_beside_the_tars():
    from pipeline.shard_format import (
        manifest_name,
        quarantine_name,
        shard_pattern,
        split_member_name,
        split_of_shard,
    )

    assert (manifest_name("training"), quarantine_name("training")) == ("training.manifest.parquet",
                                                                        "training.quarantine.jsonl")
    assert shard_pattern("val") == "val-*.tar" and split_of_shard("train-extra-000003.tar") == "train-extra"
    assert split_member_name("dir/abc-000001.label.png") == ("dir/abc-000001", "label.png")
    assert split_member_name("README") == ("README", "")
