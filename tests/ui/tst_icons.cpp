// The tray icons read on light and dark panels: each state's icon, drawn at tray size onto a light and a dark
// panel colour, stands out from the panel (WCAG contrast) over most of its area, and the states differ.
#include "icons.h"

#include <QImage>
#include <QPainter>
#include <QtTest>

#include <cmath>

using keyrelay::IndicatorState;

namespace {
constexpr int TraySize = 22;

double channel(int value)
{
    const double c = value / 255.0;
    return c <= 0.04045 ? c / 12.92 : std::pow((c + 0.055) / 1.055, 2.4);
}

double luminance(QRgb rgb)
{
    return 0.2126 * channel(qRed(rgb)) + 0.7152 * channel(qGreen(rgb)) + 0.0722 * channel(qBlue(rgb));
}

double contrast(QRgb a, QRgb b)
{
    const double la = luminance(a);
    const double lb = luminance(b);
    return (qMax(la, lb) + 0.05) / (qMin(la, lb) + 0.05);
}

/// The icon as a panel would show it.
QImage onPanel(IndicatorState state, QColor panel)
{
    QImage image(TraySize, TraySize, QImage::Format_RGB32);
    image.fill(panel);
    QPainter painter(&image);
    painter.drawPixmap(0, 0, keyrelay::icons::stateIcon(state).pixmap(TraySize, TraySize));
    return image;
}

/// The share of the icon's square whose pixels have at least 3:1 contrast with the panel (WCAG's minimum for
/// graphical objects).
double legibleShare(const QImage &image, QColor panel)
{
    int legible = 0;
    for (int y = 0; y < image.height(); ++y) {
        for (int x = 0; x < image.width(); ++x) {
            if (contrast(image.pixel(x, y), panel.rgb()) >= 3.0)
                ++legible;
        }
    }
    return double(legible) / (image.width() * image.height());
}

/// Mean colour of the pixels that are not the panel.
QColor meanColour(const QImage &image, QColor panel)
{
    double r = 0, g = 0, b = 0;
    int count = 0;
    for (int y = 0; y < image.height(); ++y) {
        for (int x = 0; x < image.width(); ++x) {
            const QRgb pixel = image.pixel(x, y);
            if (pixel == panel.rgb())
                continue;
            r += qRed(pixel);
            g += qGreen(pixel);
            b += qBlue(pixel);
            ++count;
        }
    }
    return count ? QColor(int(r / count), int(g / count), int(b / count)) : panel;
}

double distance(QColor a, QColor b)
{
    return std::hypot(a.red() - b.red(), a.green() - b.green(), a.blue() - b.blue());
}
} // namespace

class IconsTest : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void readsOnPanel_data()
    {
        QTest::addColumn<IndicatorState>("state");
        QTest::addColumn<QColor>("panel");
        const QList<QPair<const char *, QColor>> panels {
            { "light (GNOME)", QColor(0xf6, 0xf5, 0xf4) },
            { "white", QColor(Qt::white) },
            { "dark (Breeze)", QColor(0x31, 0x36, 0x3b) },
            { "black", QColor(Qt::black) },
        };
        const QList<QPair<const char *, IndicatorState>> states {
            { "running", IndicatorState::Running },
            { "degraded", IndicatorState::Degraded },
            { "stopped", IndicatorState::Stopped },
            { "error", IndicatorState::Error },
        };
        for (const auto &[stateName, state] : states) {
            for (const auto &[panelName, panel] : panels)
                QTest::addRow("%s on %s", stateName, panelName) << state << panel;
        }
    }

    void readsOnPanel()
    {
        QFETCH(IndicatorState, state);
        QFETCH(QColor, panel);
        const QImage image = onPanel(state, panel);
        const double share = legibleShare(image, panel);
        QVERIFY2(
            share >= 0.5,
            qPrintable(
                QStringLiteral("only %1 % of the icon stands out from the panel").arg(qRound(share * 100))));
    }

    void statesDiffer()
    {
        for (QColor panel : { QColor(0xf6, 0xf5, 0xf4), QColor(0x31, 0x36, 0x3b) }) {
            const QColor running = meanColour(onPanel(IndicatorState::Running, panel), panel);
            const QColor stopped = meanColour(onPanel(IndicatorState::Stopped, panel), panel);
            const QColor error = meanColour(onPanel(IndicatorState::Error, panel), panel);
            const QColor degraded = meanColour(onPanel(IndicatorState::Degraded, panel), panel);
            QVERIFY2(distance(running, stopped) > 40, qPrintable(panel.name()));
            QVERIFY2(distance(running, error) > 40, qPrintable(panel.name()));
            QVERIFY2(distance(stopped, error) > 40, qPrintable(panel.name()));
            QVERIFY2(distance(degraded, running) > 40, qPrintable(panel.name()));
            QVERIFY2(distance(degraded, stopped) > 40, qPrintable(panel.name()));
            QVERIFY2(distance(degraded, error) > 40, qPrintable(panel.name()));
        }
    }

    void badgesMarkTheNotRunningStates()
    {
        // Not by colour alone: stopped, error and degraded carry a badge in the lower right quarter.
        const QColor panel(0xf6, 0xf5, 0xf4);
        const QImage running = onPanel(IndicatorState::Running, panel);
        for (IndicatorState state : { IndicatorState::Stopped, IndicatorState::Error }) {
            const QImage other = onPanel(state, panel);
            const QRect corner(TraySize / 2, TraySize / 2, TraySize / 2, TraySize / 2);
            const QRect otherQuarter(0, 0, TraySize / 2, TraySize / 2);
            const double cornerChange
                = distance(meanColour(running.copy(corner), panel), meanColour(other.copy(corner), panel));
            const double topLeftChange = distance(meanColour(running.copy(otherQuarter), panel),
                                                  meanColour(other.copy(otherQuarter), panel));
            QVERIFY2(cornerChange > topLeftChange, qPrintable(QString::number(int(state))));
        }
        // Running with problems has another colour all over; its badge makes the corner stand out from the
        // rest of its own square far more than the running icon's corner does.
        const QImage degraded = onPanel(IndicatorState::Degraded, panel);
        const QRect corner(TraySize / 2, TraySize / 2, TraySize / 2, TraySize / 2);
        const QRect topLeft(0, 0, TraySize / 2, TraySize / 2);
        const auto ownContrast = [&](const QImage &image) {
            return distance(meanColour(image.copy(corner), panel), meanColour(image.copy(topLeft), panel));
        };
        QVERIFY2(ownContrast(degraded) > ownContrast(running) + 40,
                 qPrintable(QStringLiteral("%1 vs %2").arg(ownContrast(degraded)).arg(ownContrast(running))));
    }
};

QTEST_MAIN(IconsTest)
#include "tst_icons.moc"
