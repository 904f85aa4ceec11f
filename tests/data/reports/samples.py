"""Report samples shaped like the big senders' mails, built from the files beside this one.

The XML and JSON files are the report documents; this module compresses them the way each
sender does (Google: zip; Microsoft: gzip; TLS-RPT: gzip, RFC 8460 5.3) and wraps them in
mails with those senders' structure. See README.md for where each shape comes from.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import zipfile
from email.mime.application import MIMEApplication
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import SMTP
from pathlib import Path

HERE = Path(__file__).resolve().parent
GOOGLE_ZIP_NAME = "google.com!example.test!1700006400!1700092799.zip"
MICROSOFT_GZ_NAME = "enterprise.protection.outlook.com!example.test!1700006400!1700092800.xml.gz"
TLSRPT_GZ_NAME = "google.com!example.test!1700006400!1700092799!001.json.gz"


def sample(name: str) -> bytes:
    return (HERE / name).read_bytes()


def zipped(name: str, content: bytes) -> bytes:
    """`content` as the single member `name` of a deflated zip (fixed time stamp)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(zipfile.ZipInfo(name, date_time=(2023, 11, 16, 0, 0, 0)), content,
                         compress_type=zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def gzipped(content: bytes) -> bytes:
    return gzip.compress(content, mtime=0)


def _headers(message: MIMEBase, sender: str, subject: str, to: str) -> None:
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = "Thu, 16 Nov 2023 07:59:59 -0800"
    message["Message-ID"] = f"<{hashlib.sha256(subject.encode()).hexdigest()[:20]}@reports.example>"


def google_dmarc_mail(to: str = "postmaster@example.test") -> bytes:
    """Google's shape: the whole message is the zip (application/zip, base64)."""
    part = MIMEApplication(zipped(GOOGLE_ZIP_NAME.removesuffix(".zip") + ".xml",
                                  sample("google_dmarc.xml")), "zip", name=GOOGLE_ZIP_NAME)
    part.add_header("Content-Disposition", "attachment", filename=GOOGLE_ZIP_NAME)
    _headers(part, "noreply-dmarc-support@google.com",
             "Report domain: example.test Submitter: google.com Report-ID: "
             "13729587403175624651", to)
    return part.as_bytes(policy=SMTP)


def microsoft_dmarc_mail(to: str = "postmaster@example.test") -> bytes:
    """Microsoft's shape: multipart/mixed, a text part, the report as application/gzip."""
    message = MIMEMultipart("mixed")
    _headers(message, "dmarcreport@microsoft.com",
             "Report Domain: example.test Submitter: enterprise.protection.outlook.com "
             "Report-ID: <3f6a3b9e2c4d4e0f9a8b7c6d5e4f3a2b>", to)
    message.attach(MIMEText("This is a DMARC aggregate report from Microsoft Corporation.",
                            "plain"))
    report = MIMEApplication(gzipped(sample("microsoft_dmarc.xml")), "gzip",
                             name=MICROSOFT_GZ_NAME)
    report.add_header("Content-Disposition", "attachment", filename=MICROSOFT_GZ_NAME)
    message.attach(report)
    return message.as_bytes(policy=SMTP)


def tlsrpt_mail(to: str = "postmaster@example.test",
                document: bytes | None = None) -> bytes:
    """RFC 8460 5.3: multipart/report; report-type=tlsrpt, application/tlsrpt+gzip."""
    message = MIMEMultipart("report", report_type="tlsrpt")
    _headers(message, "noreply-smtp-tls-reporting@google.com",
             "Report Domain: example.test Submitter: google.com Report-ID: "
             "<2023-11-15T00:00:00Z_example.test@google.com>", to)
    message["TLS-Report-Domain"] = "example.test"
    message["TLS-Report-Submitter"] = "google.com"
    message.attach(MIMEText("This is an aggregate TLS report from google.com", "plain"))
    report = MIMEApplication(gzipped(document or sample("google_tlsrpt.json")),
                             "tlsrpt+gzip", name=TLSRPT_GZ_NAME)
    report.add_header("Content-Disposition", "attachment", filename=TLSRPT_GZ_NAME)
    message.attach(report)
    return message.as_bytes(policy=SMTP)


def octet_stream_mail(payload: bytes, filename: str,
                      to: str = "postmaster@example.test") -> bytes:
    """A smaller sender's shape: application/octet-stream, the kind told by the name."""
    message = MIMEMultipart("mixed")
    _headers(message, "dmarc@small-isp.example", f"DMARC report {filename}", to)
    message.attach(MIMEText("Aggregate report attached.", "plain"))
    part = MIMEApplication(payload, "octet-stream")
    part.add_header("Content-Disposition", "attachment", filename=filename)
    message.attach(part)
    return message.as_bytes(policy=SMTP)
