#include "logmodel.h"

#include "coretext.h"
#include "csv.h"

#include <QColor>
#include <QLocale>

#include <algorithm>

namespace keyrelay {

LogModel::LogModel(QObject *parent, int capacity, int flushMs)
    : QAbstractTableModel(parent), m_capacity(qMax(1, capacity))
{
    m_flushTimer.setSingleShot(true);
    m_flushTimer.setInterval(flushMs);
    connect(&m_flushTimer, &QTimer::timeout, this, &LogModel::flush);
}

int LogModel::rowCount(const QModelIndex &parent) const
{
    return parent.isValid() ? 0 : int(m_rows.size());
}

int LogModel::columnCount(const QModelIndex &parent) const
{
    return parent.isValid() ? 0 : ColumnCount;
}

bool LogModel::isError(const RequestRecord &record)
{
    return record.status == 0 || record.status >= 400 || !record.error.isEmpty();
}

bool LogModel::isKeyEvent(const RequestRecord &record)
{
    return record.method == QLatin1String("KEY");
}

void LogModel::append(const RequestRecord &record)
{
    m_pending.append(record);
    // Never hold more than one screenful of history beyond the capacity while waiting.
    if (m_pending.size() > m_capacity)
        m_pending.remove(0, m_pending.size() - m_capacity);
    if (!m_flushTimer.isActive())
        m_flushTimer.start();
}

void LogModel::flush()
{
    m_flushTimer.stop();
    if (m_pending.isEmpty())
        return;
    const auto earlier = [](const RequestRecord &a, const RequestRecord &b) {
        return a.startedAt < b.startedAt;
    };
    // Records come when their request ends: a long request's comes after rows that began later.
    std::stable_sort(m_pending.begin(), m_pending.end(), earlier);
    for (const RequestRecord &record : std::as_const(m_pending))
        m_keyEvents += isKeyEvent(record) ? 1 : 0;
    if (m_rows.isEmpty() || !earlier(m_pending.constFirst(), m_rows.constLast())) {
        // The common case: everything is newer than the last row. One removal, one insertion.
        const qsizetype overflow = m_rows.size() + m_pending.size() - m_capacity;
        const int removeCount = int(qMin<qsizetype>(qMax<qsizetype>(overflow, 0), m_rows.size()));
        if (removeCount > 0) {
            beginRemoveRows(QModelIndex(), 0, removeCount - 1);
            for (int i = 0; i < removeCount; ++i)
                m_keyEvents -= isKeyEvent(m_rows.at(i)) ? 1 : 0;
            m_rows.remove(0, removeCount);
            endRemoveRows();
        }
        const int first = int(m_rows.size());
        beginInsertRows(QModelIndex(), first, first + int(m_pending.size()) - 1);
        m_rows.append(m_pending);
        m_pending.clear();
        endInsertRows();
        return;
    }
    // Some go between the rows: insert each run where it belongs, then drop the oldest over capacity.
    qsizetype next = 0;
    while (next < m_pending.size()) {
        const qsizetype at
            = std::upper_bound(m_rows.cbegin(), m_rows.cend(), m_pending.at(next), earlier) - m_rows.cbegin();
        qsizetype end = next + 1;
        while (end < m_pending.size() && (at == m_rows.size() || earlier(m_pending.at(end), m_rows.at(at))))
            ++end;
        beginInsertRows(QModelIndex(), int(at), int(at + end - next) - 1);
        m_rows.insert(at, end - next, RequestRecord());
        std::copy(m_pending.cbegin() + next, m_pending.cbegin() + end, m_rows.begin() + at);
        endInsertRows();
        next = end;
    }
    m_pending.clear();
    const int removeCount = int(qMax<qsizetype>(m_rows.size() - m_capacity, 0));
    if (removeCount > 0) {
        beginRemoveRows(QModelIndex(), 0, removeCount - 1);
        for (int i = 0; i < removeCount; ++i)
            m_keyEvents -= isKeyEvent(m_rows.at(i)) ? 1 : 0;
        m_rows.remove(0, removeCount);
        endRemoveRows();
    }
}

void LogModel::clear()
{
    m_pending.clear();
    m_flushTimer.stop();
    if (m_rows.isEmpty())
        return;
    beginResetModel();
    m_rows.clear();
    m_keyEvents = 0;
    endResetModel();
}

QString LogModel::cellText(int row, int column) const
{
    const RequestRecord &record = m_rows.at(row);
    // A key event has no status, stream or bytes of its own.
    if (isKeyEvent(record) && (column == StatusColumn || column == StreamedColumn || column == BytesColumn))
        return QString();
    switch (column) {
    case TimeColumn:
        return record.startedAt.toLocalTime().toString(QStringLiteral("yyyy-MM-dd HH:mm:ss.zzz"));
    case MethodColumn:
        return record.method;
    case PathColumn:
        return record.path;
    case ModelColumn:
        return record.model;
    case ProviderColumn:
        return record.provider;
    case KeyColumn:
        return record.keyLabel;
    case StatusColumn:
        return record.status == 0 ? QStringLiteral("-") : QString::number(record.status);
    case LatencyColumn:
        return record.latencyMs < 0 ? QString() : tr("%1 ms").arg(record.latencyMs);
    case StreamedColumn:
        return record.streamed ? tr("yes") : tr("no");
    case BytesColumn:
        return QString::number(record.responseBytes);
    case TokensColumn:
        if (record.totalTokens < 0)
            return QString();
        if (record.promptTokens >= 0 && record.completionTokens >= 0)
            return QStringLiteral("%1 (%2+%3)")
                .arg(record.totalTokens)
                .arg(record.promptTokens)
                .arg(record.completionTokens);
        return QString::number(record.totalTokens);
    case ErrorColumn: {
        const QString error
            = CoreText::display(record.error); // KeyRelay's own messages in the user's language
        // A try that failed before the first byte: the next provider was tried (a row of its own).
        if (record.fellBack)
            return error.isEmpty() ? tr("→ fallback") : tr("→ fallback: %1").arg(error);
        return error;
    }
    default:
        return QString();
    }
}

QVariant LogModel::data(const QModelIndex &index, int role) const
{
    if (!index.isValid() || index.row() >= m_rows.size())
        return QVariant();
    const RequestRecord &record = m_rows.at(index.row());
    switch (role) {
    case Qt::DisplayRole:
        if (index.column() == BytesColumn && !isKeyEvent(record))
            return QLocale().formattedDataSize(record.responseBytes, 1, QLocale::DataSizeTraditionalFormat);
        if (index.column() == TimeColumn)
            return record.startedAt.toLocalTime().toString(QStringLiteral("HH:mm:ss.zzz"));
        return cellText(index.row(), index.column());
    case Qt::ToolTipRole:
        if (index.column() == TimeColumn)
            return QLocale().toString(record.startedAt.toLocalTime(), QLocale::LongFormat);
        if (index.column() == ErrorColumn || index.column() == PathColumn)
            return cellText(index.row(), index.column());
        if (record.fellBack && (index.column() == StatusColumn || index.column() == ProviderColumn))
            return tr("This try failed before any answer reached the client; the next provider was tried.");
        return QVariant();
    case Qt::ForegroundRole:
        if (index.column() == StatusColumn && isError(record))
            return QColor(0xc0, 0x20, 0x20);
        return QVariant();
    case Qt::TextAlignmentRole:
        if (index.column() == StatusColumn || index.column() == LatencyColumn || index.column() == BytesColumn
            || index.column() == TokensColumn)
            return int(Qt::AlignRight | Qt::AlignVCenter);
        return QVariant();
    case StatusRole:
        return record.status;
    case IsErrorRole:
        return isError(record);
    default:
        return QVariant();
    }
}

QString LogModel::headerText(int column) const
{
    switch (column) {
    case TimeColumn:
        return tr("Time");
    case MethodColumn:
        return tr("Method");
    case PathColumn:
        return tr("Path");
    case ModelColumn:
        return tr("Model");
    case ProviderColumn:
        return tr("Provider");
    case KeyColumn:
        return tr("Key");
    case StatusColumn:
        return tr("Status");
    case LatencyColumn:
        return tr("Latency");
    case StreamedColumn:
        return tr("Streamed");
    case BytesColumn:
        return tr("Bytes");
    case TokensColumn:
        return tr("Tokens");
    case ErrorColumn:
        return tr("Error");
    default:
        return QString();
    }
}

QVariant LogModel::headerData(int section, Qt::Orientation orientation, int role) const
{
    if (orientation == Qt::Horizontal && role == Qt::DisplayRole)
        return headerText(section);
    return QAbstractTableModel::headerData(section, orientation, role);
}

QString LogModel::csvField(const QString &text)
{
    return keyrelay::csvField(text);
}

QString LogModel::toCsv(const QList<int> &rows) const
{
    QString out;
    QStringList fields;
    for (int column = 0; column < ColumnCount; ++column)
        fields << csvField(headerText(column));
    out += fields.join(QLatin1Char(',')) + QStringLiteral("\r\n");
    for (int row : rows) {
        if (row < 0 || row >= m_rows.size())
            continue;
        fields.clear();
        for (int column = 0; column < ColumnCount; ++column)
            fields << csvField(cellText(row, column));
        out += fields.join(QLatin1Char(',')) + QStringLiteral("\r\n");
    }
    return out;
}

LogFilterModel::LogFilterModel(QObject *parent) : QSortFilterProxyModel(parent) { }

void LogFilterModel::setText(const QString &text)
{
    const QString trimmed = text.trimmed();
    if (trimmed == m_text)
        return;
    m_text = trimmed;
    invalidateFilter();
}

void LogFilterModel::setErrorsOnly(bool errorsOnly)
{
    if (errorsOnly == m_errorsOnly)
        return;
    m_errorsOnly = errorsOnly;
    invalidateFilter();
}

bool LogFilterModel::filterAcceptsRow(int sourceRow, const QModelIndex &sourceParent) const
{
    const QAbstractItemModel *source = sourceModel();
    if (m_errorsOnly && !source->index(sourceRow, 0, sourceParent).data(LogModel::IsErrorRole).toBool())
        return false;
    if (m_text.isEmpty())
        return true;
    const int columns = source->columnCount(sourceParent);
    for (int column = 0; column < columns; ++column) {
        if (source->index(sourceRow, column, sourceParent)
                .data()
                .toString()
                .contains(m_text, Qt::CaseInsensitive))
            return true;
    }
    return false;
}

} // namespace keyrelay
