#include "icons.h"

#include <QFile>
#include <QPainter>
#include <QPainterPath>
#include <QPixmap>

namespace keyrelay::icons {

namespace {
QPixmap drawKey(IndicatorState state, int size)
{
    QPixmap pixmap(size, size);
    pixmap.fill(Qt::transparent);
    QPainter painter(&pixmap);
    painter.setRenderHint(QPainter::Antialiasing);
    painter.scale(size / 64.0, size / 64.0);

    // Mid-luminance colours (relative luminance 0.22-0.23): at least 3:1 contrast both with light panels and
    // with dark ones (Breeze dark, black), and the white key at almost 4:1 on each (tests/ui/tst_icons.cpp).
    QColor background;
    switch (state) {
    case IndicatorState::Running:
        background = QColor(0x3d, 0x7f, 0xea);
        break;
    case IndicatorState::Degraded:
        background = QColor(0xb8, 0x6e, 0x00);
        break;
    case IndicatorState::Stopped:
        background = QColor(0x7d, 0x85, 0x90);
        break;
    case IndicatorState::Error:
        background = QColor(0xe5, 0x48, 0x3f);
        break;
    }
    painter.setPen(Qt::NoPen);
    painter.setBrush(background);
    painter.drawRoundedRect(QRectF(2, 2, 60, 60), 14, 14);

    QPen pen(Qt::white, 6, Qt::SolidLine, Qt::RoundCap, Qt::RoundJoin);
    painter.setPen(pen);
    painter.setBrush(Qt::NoBrush);
    painter.drawEllipse(QPointF(22, 32), 11, 11);
    QPainterPath shaft;
    shaft.moveTo(33, 32);
    shaft.lineTo(54, 32);
    shaft.moveTo(46, 32);
    shaft.lineTo(46, 41);
    shaft.moveTo(53, 32);
    shaft.lineTo(53, 39);
    painter.drawPath(shaft);

    // The badges stick out over the square's corner onto the panel: a ring in the opposite tone keeps their
    // edge visible on light and dark panels alike.
    if (state == IndicatorState::Stopped) {
        // A pause mark in the corner: dark, ringed in white.
        painter.setPen(QPen(Qt::white, 2.5));
        painter.setBrush(QColor(0x30, 0x30, 0x30));
        painter.drawEllipse(QPointF(48, 48), 14, 14);
        painter.setPen(Qt::NoPen);
        painter.setBrush(Qt::white);
        painter.drawRect(QRectF(42, 41, 4, 14));
        painter.drawRect(QRectF(50, 41, 4, 14));
    } else if (state == IndicatorState::Degraded) {
        // A white exclamation mark on a dark badge, ringed in white: running, but not well.
        painter.setPen(QPen(Qt::white, 2.5));
        painter.setBrush(QColor(0x30, 0x30, 0x30));
        painter.drawEllipse(QPointF(48, 48), 14, 14);
        painter.setPen(Qt::NoPen);
        painter.setBrush(Qt::white);
        painter.drawRect(QRectF(46, 39, 4, 11));
        painter.drawRect(QRectF(46, 52, 4, 4));
    } else if (state == IndicatorState::Error) {
        // An exclamation mark in the corner: yellow, ringed in dark grey.
        painter.setPen(QPen(QColor(0x30, 0x30, 0x30), 2.5));
        painter.setBrush(QColor(0xff, 0xd0, 0x00));
        painter.drawEllipse(QPointF(48, 48), 14, 14);
        painter.setPen(Qt::NoPen);
        painter.setBrush(QColor(0x30, 0x30, 0x30));
        painter.drawRect(QRectF(46, 39, 4, 11));
        painter.drawRect(QRectF(46, 52, 4, 4));
    }
    return pixmap;
}
} // namespace

QIcon stateIcon(IndicatorState state)
{
    QIcon icon;
    for (int size : { 16, 22, 24, 32, 48, 64 })
        icon.addPixmap(drawKey(state, size));
    return icon;
}

QIcon appIcon()
{
    const QString svg = QStringLiteral(":/keyrelay/keyrelay.svg");
    if (QFile::exists(svg)) {
        QIcon icon(svg);
        if (!icon.isNull() && !icon.availableSizes().isEmpty())
            return icon;
    }
    return stateIcon(IndicatorState::Running);
}

} // namespace keyrelay::icons
