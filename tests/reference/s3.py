"""Test helper for an S3-compatible server (moto_server): make a bucket and upload a directory
into it, or download every object under a prefix into a directory.

    s3.py ENDPOINT put BUCKET PREFIX DIR
    s3.py ENDPOINT get BUCKET PREFIX DIR
"""
import os
import sys

import boto3


def main():
    endpoint, verb, bucket, prefix, directory = sys.argv[1:6]
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    )
    if verb == "put":
        existing = [b["Name"] for b in s3.list_buckets().get("Buckets", [])]
        if bucket not in existing:
            s3.create_bucket(Bucket=bucket)
        for root, _, files in os.walk(directory):
            for name in sorted(files):
                path = os.path.join(root, name)
                key = prefix + "/" + os.path.relpath(path, directory)
                s3.upload_file(path, bucket, key)
    elif verb == "get":
        os.makedirs(directory, exist_ok=True)
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/")
        for page in pages:
            for obj in page.get("Contents", []):
                name = obj["Key"][len(prefix) + 1 :]
                s3.download_file(bucket, obj["Key"], os.path.join(directory, name))
    else:
        sys.exit(f"unknown verb {verb}")


main()
