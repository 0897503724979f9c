#include "usagepage.h"

#include "csv.h"

#include <QBarCategoryAxis>
#include <QBarSet>
#include <QChart>
#include <QChartView>
#include <QComboBox>
#include <QCursor>
#include <QFileDialog>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLocale>
#include <QMessageBox>
#include <QPushButton>
#include <QSaveFile>
#include <QSplitter>
#include <QStackedBarSeries>
#include <QStandardItemModel>
#include <QStandardPaths>
#include <QTableView>
#include <QToolTip>
#include <QVBoxLayout>
#include <QValueAxis>

#include <algorithm>

namespace keyrelay {

namespace {

/// Distinguishable colours for the stacked parts (Tableau 10 without its grey, and a plum); "Other" is
/// grey. Ten, so that the parts of one chart (at most MaxSeries) never share one.
const QRgb kPalette[]
    = { 0x4e79a7, 0xf28e2b, 0xe15759, 0x76b7b2, 0x59a14f, 0xedc948, 0xb07aa1, 0xff9da7, 0x9c755f, 0x8e6c8a };
constexpr int kPaletteSize = int(sizeof(kPalette) / sizeof(kPalette[0]));
static_assert(kPaletteSize >= UsagePage::MaxSeries, "the parts of one chart must not share a colour");
const QRgb kOtherColor = 0xbab0ac;

/// FNV-1a: the same number for the same text in every session (qHash() is seeded per process).
quint32 stableHash(const QString &text)
{
    quint32 hash = 2166136261u;
    const QByteArray bytes = text.toUtf8();
    for (const char byte : bytes) {
        hash ^= quint8(byte);
        hash *= 16777619u;
    }
    return hash;
}

QString dayText(const QDate &day)
{
    return day.toString(Qt::ISODate);
}

QStandardItem *numberItem(qint64 value)
{
    auto *item = new QStandardItem(QLocale().toString(value));
    item->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
    return item;
}

} // namespace

QColor UsagePage::colorFor(const QString &id)
{
    return QColor::fromRgb(kPalette[stableHash(id) % kPaletteSize]);
}

QHash<QString, QColor> UsagePage::colorsFor(QStringList ids)
{
    // Each key (or model) has its colour from its id; two that would share one on the same chart are
    // told apart in the order of their ids, so that the outcome does not depend on this month's totals.
    std::sort(ids.begin(), ids.end());
    QHash<QString, QColor> colors;
    QList<bool> taken(kPaletteSize, false);
    for (const QString &id : std::as_const(ids)) {
        int slot = int(stableHash(id) % kPaletteSize);
        for (int tries = 0; tries < kPaletteSize && taken.at(slot); ++tries)
            slot = (slot + 1) % kPaletteSize;
        taken[slot] = true;
        colors.insert(id, QColor::fromRgb(kPalette[slot]));
    }
    return colors;
}

UsagePage::UsagePage(UsageStore *store, QWidget *parent) : QWidget(parent), m_store(store)
{
    m_problem = new QLabel(this);
    m_problem->setWordWrap(true);
    m_problem->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_problem->setStyleSheet(QStringLiteral("color: #c02020;"));
    m_problem->hide();

    auto *splitter = new QSplitter(Qt::Vertical, this);
    splitter->addWidget(buildChart());
    splitter->addWidget(buildTable());
    splitter->setStretchFactor(0, 3);
    splitter->setStretchFactor(1, 2);
    splitter->setSizes({ 600, 400 }); // scaled to the real height: the chart gets the larger part
    splitter->setChildrenCollapsible(false);

    auto *layout = new QVBoxLayout(this);
    layout->addLayout(buildToolbar());
    layout->addWidget(m_problem);
    layout->addWidget(splitter, 1);

    connect(m_store, &UsageStore::flushed, this, &UsagePage::onStoreFlushed);
    connect(m_store, &UsageStore::problemChanged, this, &UsagePage::showProblem);
    showProblem(m_store->problem());
    refresh();
}

QLayout *UsagePage::buildToolbar()
{
    m_groupCombo = new QComboBox(this);
    m_groupCombo->addItem(tr("Key"), int(UsageStore::GroupBy::Key));
    m_groupCombo->addItem(tr("Model"), int(UsageStore::GroupBy::Model));
    m_groupCombo->addItem(tr("Provider"), int(UsageStore::GroupBy::Provider));
    auto *groupLabel = new QLabel(tr("St&ack by:"), this);
    groupLabel->setBuddy(m_groupCombo);
    connect(m_groupCombo, &QComboBox::currentIndexChanged, this, [this] { refresh(); });

    m_refresh = new QPushButton(tr("&Refresh"), this);
    m_refresh->setToolTip(tr("Read the usage figures again (they also update by themselves)"));
    connect(m_refresh, &QPushButton::clicked, this, &UsagePage::refresh);
    m_export = new QPushButton(tr("&Export CSV…"), this);
    connect(m_export, &QPushButton::clicked, this, &UsagePage::exportWithDialog);
    m_summary = new QLabel(this);
    m_summary->setTextInteractionFlags(Qt::TextSelectableByMouse);

    auto *row = new QHBoxLayout;
    row->addWidget(groupLabel);
    row->addWidget(m_groupCombo);
    row->addSpacing(16);
    row->addWidget(m_summary, 1);
    row->addWidget(m_refresh);
    row->addWidget(m_export);
    return row;
}

QChartView *UsagePage::buildChart()
{
    m_chart = new QChart;
    m_chart->setAnimationOptions(QChart::NoAnimation);
    m_chart->legend()->setAlignment(Qt::AlignBottom);
    m_chart->setMargins(QMargins(4, 4, 4, 4));
    m_series = new QStackedBarSeries(m_chart);
    m_series->setBarWidth(0.75);
    m_chart->addSeries(m_series);
    m_dayAxis = new QBarCategoryAxis(m_chart);
    m_dayAxis->setLabelsAngle(-90);
    m_dayAxis->setGridLineVisible(false);
    m_tokenAxis = new QValueAxis(m_chart);
    m_tokenAxis->setLabelFormat(QStringLiteral("%.0f"));
    m_tokenAxis->setTitleText(tr("Tokens"));
    m_chart->addAxis(m_dayAxis, Qt::AlignBottom);
    m_chart->addAxis(m_tokenAxis, Qt::AlignLeft);
    m_series->attachAxis(m_dayAxis);
    m_series->attachAxis(m_tokenAxis);
    connect(m_series, &QStackedBarSeries::hovered, this, [this](bool status, int index, QBarSet *set) {
        if (!status || !set || index < 0 || index >= m_dayAxis->count()) {
            QToolTip::hideText();
            return;
        }
        QToolTip::showText(
            QCursor::pos(),
            tr("%1 on %2: %3 tokens")
                .arg(set->label(), m_dayAxis->at(index), QLocale().toString(qint64(set->at(index)))));
    });

    m_chartView = new QChartView(m_chart, this); // owns the chart
    m_chartView->setRenderHint(QPainter::Antialiasing);
    m_chartView->setMinimumHeight(240);
    return m_chartView;
}

QTableView *UsagePage::buildTable()
{
    m_model = new QStandardItemModel(0, ColumnCount, this);
    m_view = new QTableView(this);
    m_view->setModel(m_model);
    m_view->setSelectionBehavior(QAbstractItemView::SelectRows);
    m_view->setEditTriggers(QAbstractItemView::NoEditTriggers);
    m_view->setAlternatingRowColors(true);
    m_view->setWordWrap(false);
    m_view->verticalHeader()->hide();
    m_view->verticalHeader()->setDefaultSectionSize(m_view->fontMetrics().height() + 6);
    m_view->horizontalHeader()->setSectionResizeMode(QHeaderView::Stretch);
    m_view->setMinimumHeight(120);
    return m_view;
}

UsageStore::GroupBy UsagePage::groupBy() const
{
    return UsageStore::GroupBy(m_groupCombo->currentData().toInt());
}

void UsagePage::setGroupBy(UsageStore::GroupBy by)
{
    m_groupCombo->setCurrentIndex(m_groupCombo->findData(int(by)));
}

void UsagePage::refresh()
{
    m_dirty = false;
    const QDate today = m_store->today();
    const UsageStore::GroupBy by = groupBy();
    QList<UsageRow> rows = m_store->daily(Days, by);
    updateChart(rows, today);

    // The table: newest day first, then the biggest users.
    std::stable_sort(rows.begin(), rows.end(), [](const UsageRow &a, const UsageRow &b) {
        if (a.day != b.day)
            return a.day > b.day;
        return a.totalTokens > b.totalTokens;
    });
    m_rows = rows;
    updateTable();
    updateSummary(today);
}

void UsagePage::updateChart(const QList<UsageRow> &rows, const QDate &today)
{
    const QDate first = today.addDays(-(Days - 1));
    QStringList categories;
    for (int i = 0; i < Days; ++i)
        categories << first.addDays(i).toString(QStringLiteral("MM-dd"));

    struct Group
    {
        QString id; ///< key id, model or provider id
        QString name;
        qint64 total = 0;
        QList<qreal> values;
    };
    QList<Group> groups;
    QHash<QString, qsizetype> indexOf; // by key id, model or provider id, not by the shown name
    for (const UsageRow &row : rows) {
        const qint64 day = first.daysTo(row.day);
        if (day < 0 || day >= Days)
            continue;
        const QString id = groupId(row);
        auto it = indexOf.constFind(id);
        if (it == indexOf.cend()) {
            it = indexOf.insert(id, groups.size());
            groups.append(Group { id, groupName(row), 0, QList<qreal>(Days, 0.0) });
        }
        Group &group = groups[*it];
        group.total += row.totalTokens;
        group.values[day] += qreal(row.totalTokens);
    }
    std::stable_sort(groups.begin(), groups.end(), [](const Group &a, const Group &b) {
        return a.total != b.total ? a.total > b.total : a.name.localeAwareCompare(b.name) < 0;
    });
    const bool hasOther = groups.size() > MaxSeries;
    if (hasOther) {
        Group other { QString(), tr("Other"), 0, QList<qreal>(Days, 0.0) };
        for (qsizetype i = MaxSeries - 1; i < groups.size(); ++i) {
            other.total += groups.at(i).total;
            for (int day = 0; day < Days; ++day)
                other.values[day] += groups.at(i).values.at(day);
        }
        groups.resize(MaxSeries - 1);
        groups.append(other);
    }

    m_series->clear();
    m_dayAxis->clear();
    m_dayAxis->append(categories);
    QStringList ids;
    for (qsizetype i = 0; i < groups.size() - (hasOther ? 1 : 0); ++i)
        ids << groups.at(i).id;
    const QHash<QString, QColor> colors = colorsFor(ids);
    QList<qreal> stacked(Days, 0.0);
    for (qsizetype i = 0; i < groups.size(); ++i) {
        const Group &group = groups.at(i);
        auto *set = new QBarSet(group.name);
        set->append(group.values);
        const bool isOther = hasOther && i == groups.size() - 1;
        const QColor color = isOther ? QColor::fromRgb(kOtherColor) : colors.value(group.id);
        set->setColor(color);
        set->setBorderColor(color.darker(115));
        m_series->append(set);
        for (int day = 0; day < Days; ++day)
            stacked[day] += group.values.at(day);
    }
    const qreal highest = *std::max_element(stacked.cbegin(), stacked.cend());
    m_tokenAxis->setRange(0, highest > 0 ? highest : 1000);
    m_tokenAxis->applyNiceNumbers();
    m_chart->setTitle(groups.isEmpty() ? tr("No tokens used in the last %1 days").arg(Days)
                                       : tr("Tokens per day, last %1 days").arg(Days));
    m_chart->legend()->setVisible(!groups.isEmpty());
}

void UsagePage::updateTable()
{
    m_model->removeRows(0, m_model->rowCount());
    m_model->setHorizontalHeaderLabels({ tr("Day"), groupHeader(), tr("Requests"), tr("Prompt tokens"),
                                         tr("Completion tokens"), tr("Total tokens") });
    for (const UsageRow &row : std::as_const(m_rows)) {
        auto *group = new QStandardItem(groupName(row));
        if (groupBy() == UsageStore::GroupBy::Key && !row.keyId.isEmpty())
            group->setToolTip(tr("Key id %1, provider %2").arg(row.keyId, row.provider));
        m_model->appendRow({ new QStandardItem(dayText(row.day)), group, numberItem(row.requests),
                             numberItem(row.promptTokens), numberItem(row.completionTokens),
                             numberItem(row.totalTokens) });
    }
}

void UsagePage::updateSummary(const QDate &today)
{
    qint64 todayTokens = 0;
    qint64 todayRequests = 0;
    for (const UsageRow &row : std::as_const(m_rows)) {
        if (row.day == today) {
            todayTokens += row.totalTokens;
            todayRequests += row.requests;
        }
    }
    QString text = tr("Tokens today: %1 (requests: %2)")
                       .arg(QLocale().toString(todayTokens), QLocale().toString(todayRequests));
    const QDateTime since = m_store->createdAt();
    if (since.isValid()) {
        qint64 total = 0;
        const QList<UsageRow> totals = m_store->totals(UsageStore::GroupBy::Key);
        for (const UsageRow &row : totals)
            total += row.totalTokens;
        text += QStringLiteral("   ·   ")
            + tr("Tokens since %1: %2").arg(dayText(since.toLocalTime().date()), QLocale().toString(total));
    }
    m_summary->setText(text);
}

void UsagePage::showProblem(const QString &problem)
{
    m_problem->setText(problem);
    m_problem->setVisible(!problem.isEmpty());
}

void UsagePage::onStoreFlushed()
{
    // Batches arrive every few seconds under load: redraw only what is seen.
    if (isVisible())
        refresh();
    else
        m_dirty = true;
}

void UsagePage::showEvent(QShowEvent *event)
{
    QWidget::showEvent(event);
    if (m_dirty)
        refresh();
}

QString UsagePage::groupId(const UsageRow &row) const
{
    switch (groupBy()) {
    case UsageStore::GroupBy::Model:
        return row.model;
    case UsageStore::GroupBy::Provider:
        return row.provider;
    case UsageStore::GroupBy::Key:
        break;
    }
    return row.keyId;
}

QString UsagePage::groupName(const UsageRow &row) const
{
    if (groupBy() == UsageStore::GroupBy::Model)
        return row.model.isEmpty() ? tr("(no model)") : row.model;
    if (groupBy() == UsageStore::GroupBy::Provider)
        return row.provider;
    if (!row.keyLabel.isEmpty())
        return row.keyLabel;
    return row.keyId.isEmpty() ? tr("(no key)") : row.keyId;
}

QString UsagePage::groupHeader() const
{
    switch (groupBy()) {
    case UsageStore::GroupBy::Model:
        return tr("Model");
    case UsageStore::GroupBy::Provider:
        return tr("Provider");
    case UsageStore::GroupBy::Key:
        break;
    }
    return tr("Key");
}

QString UsagePage::toCsv() const
{
    QString out = csvLine({ tr("Day"), groupHeader(), tr("Requests"), tr("Prompt tokens"),
                            tr("Completion tokens"), tr("Total tokens") });
    for (const UsageRow &row : m_rows) {
        out += csvLine({ dayText(row.day), groupName(row), QString::number(row.requests),
                         QString::number(row.promptTokens), QString::number(row.completionTokens),
                         QString::number(row.totalTokens) });
    }
    return out;
}

bool UsagePage::exportCsv(const QString &path, QString *error) const
{
    QSaveFile file(path);
    if (!file.open(QIODevice::WriteOnly)) {
        *error = file.errorString();
        return false;
    }
    file.write(toCsv().toUtf8());
    if (!file.commit()) {
        *error = file.errorString();
        return false;
    }
    return true;
}

void UsagePage::exportWithDialog()
{
    const QString folder = QStandardPaths::writableLocation(QStandardPaths::DocumentsLocation);
    const QString path = QFileDialog::getSaveFileName(
        this, tr("Export usage"), folder + QStringLiteral("/keyrelay-usage.csv"), tr("CSV files (*.csv)"));
    if (path.isEmpty())
        return;
    QString error;
    if (!exportCsv(path, &error))
        QMessageBox::warning(this, tr("Export usage"), tr("Could not write %1: %2").arg(path, error));
}

} // namespace keyrelay
