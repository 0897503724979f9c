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

    QColor background;
    switch (state) {
    case IndicatorState::Running:
        background = QColor(0x2f, 0x6f, 0xdf);
        break;
    case IndicatorState::Stopped:
        background = QColor(0x8a, 0x8f, 0x98);
        break;
    case IndicatorState::Error:
        background = QColor(0xd0, 0x36, 0x2f);
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

    if (state == IndicatorState::Stopped) {
        // A pause mark in the corner.
        painter.setPen(Qt::NoPen);
        painter.setBrush(QColor(0x30, 0x30, 0x30));
        painter.drawEllipse(QPointF(48, 48), 14, 14);
        painter.setBrush(Qt::white);
        painter.drawRect(QRectF(42, 41, 4, 14));
        painter.drawRect(QRectF(50, 41, 4, 14));
    } else if (state == IndicatorState::Error) {
        painter.setPen(Qt::NoPen);
        painter.setBrush(QColor(0xff, 0xd0, 0x00));
        painter.drawEllipse(QPointF(48, 48), 14, 14);
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
