"""Label sheets: a QR code and the human-readable code for each item, on A4, as PDF.

reportlab draws the QR codes itself (no image files, no fonts beyond the PDF base set), so a
sheet prints the same on any printer; the code text under each QR is what a person types.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from reportlab.graphics import renderPDF
from reportlab.graphics.barcode.qr import QrCodeWidget
from reportlab.graphics.shapes import Drawing
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfgen import canvas

COLUMNS, ROWS = 4, 10  # 40 labels of 52.5 x 29.7 mm, a common A4 sheet layout
QR_MM = 22


def label_sheet(items: Sequence[tuple[str, str]]) -> bytes:
    """``items`` are (code, second line) pairs; returns the PDF bytes, one page per 40."""
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4)
    pdf.setTitle("LIMS labels")
    width, height = A4
    cell_w, cell_h = width / COLUMNS, height / ROWS
    for index, (code, detail) in enumerate(items):
        slot = index % (COLUMNS * ROWS)
        if index and slot == 0:
            pdf.showPage()
        col, row = slot % COLUMNS, slot // COLUMNS
        x, y = col * cell_w, height - (row + 1) * cell_h
        widget = QrCodeWidget(code)
        x0, y0, x1, y1 = widget.getBounds()
        size = QR_MM * mm
        drawing = Drawing(size, size, transform=[size / (x1 - x0), 0, 0, size / (y1 - y0), 0, 0])
        drawing.add(widget)
        renderPDF.draw(drawing, pdf, x + 2 * mm, y + (cell_h - size) / 2)
        pdf.setFont("Helvetica-Bold", 8)
        pdf.drawString(x + size + 3 * mm, y + cell_h / 2 + 2 * mm, code[:24])
        pdf.setFont("Helvetica", 6)
        pdf.drawString(x + size + 3 * mm, y + cell_h / 2 - 2 * mm, detail[:32])
    pdf.save()
    return buffer.getvalue()
