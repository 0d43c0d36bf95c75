"""Each image's lineage from the custody log: every snapshot id, the volume's size and the key at each step."""

from __future__ import annotations

from handlers.common.lineage import GIB, disk_lineage

MEMBER_KEY = "arn:aws:kms:eu-west-1:333333333333:key/member"
FORENSIC_KEY = "arn:aws:kms:eu-west-1:222222222222:key/forensic"
ORIGINAL = {
    "DeviceName": "/dev/sdf",
    "Encrypted": False,
    "KmsKeyId": "",
    "SnapshotId": "snap-orig",
    "VolumeId": "vol-1",
}


def custody(image_size: int) -> list[dict]:
    return [
        {
            "event": "disk-snapshots-taken",
            "detail": {"Account": "333333333333", "Region": "eu-west-1", "Snapshots": [{**ORIGINAL, "VolumeSize": 20}]},
        },
        {
            "event": "disk-snapshots-shared",
            "detail": {
                "MemberKmsKey": MEMBER_KEY,
                "Snapshots": [{**ORIGINAL, "VolumeSize": 20, "ShareableSnapshotId": "snap-reenc"}],
            },
        },
        {
            "event": "disk-snapshots-copied-to-forensic",
            "detail": {
                "ForensicKmsKey": FORENSIC_KEY,
                "Snapshots": [{**ORIGINAL, "ShareableSnapshotId": "snap-reenc", "ForensicSnapshotId": "snap-forensic"}],
            },
        },
        {
            "event": "disk-image-written",
            "detail": {
                "VolumeId": "vol-1",
                "Key": "case/disk/vol-1.img",
                "Sha256": "ab" * 32,
                "Size": image_size,
                "Source": "ebs-snapshot:snap-blocks",
                "SourceBytes": image_size,
            },
        },
    ]


def test_lineage_names_every_snapshot_account_and_key_in_order() -> None:
    [volume] = disk_lineage(custody(20 * GIB), forensic_account="222222222222")
    assert [(s["step"], s.get("snapshot_id", s.get("key")), s["kms_key"]) for s in volume["steps"]] == [
        ("member-snapshot", "snap-orig", "unencrypted"),
        ("reencrypted-copy", "snap-reenc", MEMBER_KEY),
        ("forensic-copy", "snap-forensic", FORENSIC_KEY),
        ("image", "case/disk/vol-1.img", FORENSIC_KEY),
    ]
    assert [s.get("account") for s in volume["steps"][:3]] == ["333333333333", "333333333333", "222222222222"]
    assert volume["volume_size_gib"] == 20 and volume["size_matches_volume"] and not volume["size_note"]


def test_an_image_smaller_than_its_volume_is_flagged_with_both_sizes() -> None:
    [volume] = disk_lineage(custody(GIB))
    assert not volume["size_matches_volume"]
    assert "1073741824 bytes (1 GiB) of a 20 GiB volume" in volume["size_note"]
    assert "ebs-snapshot:snap-blocks reports 1 GiB" in volume["size_note"]
